// Throws 2,000 malformed, random and half-valid bodies at /validate over real HTTPS (keep-alive, 16 at a
// time) and checks that every one gets an answer (200 or a declared 4xx, never a 5xx, never a hang) and
// that the server is still healthy afterwards.

import { Agent } from 'node:https';

import fc from 'fast-check';
import t from 'tap';

import { allow, recordingDecide, review, send, startServer } from './harness.ts';

const SEED = 20261121;
const TOTAL = 2000;
const CONCURRENCY = 16;

interface Case {
  readonly what: string;
  readonly body: string | Buffer;
  readonly contentType: string | null;
}

/** Replace the value at a random path of `base` with `value` (or delete it). */
function mutate(base: unknown, pathPicks: number[], value: unknown, drop: boolean): unknown {
  const root = structuredClone(base) as Record<string, unknown>;
  let node: Record<string, unknown> = root;
  for (const pick of pathPicks) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = keys[pick % keys.length]!;
    const child = node[key];
    if (typeof child !== 'object' || child === null || pick % 3 === 0) {
      if (drop) delete node[key];
      else node[key] = value;
      return root;
    }
    node = child as Record<string, unknown>;
  }
  if (drop) delete node['uid'];
  else node['extra'] = value;
  return root;
}

function cases(): Case[] {
  const json = (v: unknown): string => JSON.stringify(v) ?? 'null';
  const kinds = [
    { group: '', version: 'v1', kind: 'Pod' },
    { group: '', version: 'v1', kind: 'Namespace' },
    { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' },
    { group: 'networking.k8s.io', version: 'v1', kind: 'NetworkPolicy' },
    { group: 'security.istio.io', version: 'v1', kind: 'PeerAuthentication' },
    { group: 'apps', version: 'v1', kind: 'Deployment' },
    { group: '', version: 'v1', kind: 'Secret' },
  ];
  const generators: fc.Arbitrary<Case>[] = [
    fc.uint8Array({ maxLength: 2048 }).map((b) => ({ what: 'random bytes', body: Buffer.from(b), contentType: 'application/json' })),
    fc.string({ maxLength: 300 }).map((s) => ({ what: 'random text', body: s, contentType: 'application/json' })),
    fc.jsonValue({ maxDepth: 6 }).map((v) => ({ what: 'random JSON', body: json(v), contentType: 'application/json' })),
    // Half-valid: a real review with one field replaced by random JSON or removed.
    fc
      .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), fc.jsonValue({ maxDepth: 4 }), fc.boolean())
      .map(([path, v, drop]) => ({ what: 'mutated review', body: json(mutate(review(), path, v, drop)), contentType: 'application/json' })),
    // Valid envelopes carrying random objects of modelled and unmodelled kinds: must be answered 200.
    fc
      .tuple(fc.constantFrom(...kinds), fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'), fc.object({ maxDepth: 4 }), fc.object({ maxDepth: 4 }))
      .map(([kind, operation, spec, meta]) => {
        const obj = { apiVersion: kind.group ? `${kind.group}/${kind.version}` : 'v1', kind: kind.kind, metadata: { name: 'x', ...stringValues(meta) }, spec, status: spec };
        return {
          what: 'valid envelope, random object',
          body: json(review({ kind, operation, object: operation === 'DELETE' ? null : obj, oldObject: operation === 'UPDATE' || operation === 'DELETE' ? obj : null })),
          contentType: 'application/json',
        };
      }),
    // Valid JSON with the wrong content type.
    fc
      .constantFrom('text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/yaml')
      .map((ct) => ({ what: `content type ${ct}`, body: json(review()), contentType: ct })),
    // Truncated real reviews (a client that died mid-write sends a short body with a correct length).
    fc.nat().map((n) => {
      const full = json(review());
      return { what: 'truncated review', body: full.slice(0, n % full.length), contentType: 'application/json' };
    }),
  ];
  const sampled = fc.sample(fc.oneof(...generators), { numRuns: TOTAL - 6, seed: SEED });
  // A few pathological bodies, always included.
  const fixed: Case[] = [
    { what: 'deep array nesting', body: '['.repeat(200_000) + ']'.repeat(200_000), contentType: 'application/json' },
    { what: 'deep object in request.object', body: json(review({ object: { metadata: { name: 'd' }, spec: 'DEEP' } })).replace('"DEEP"', deepJson(5000)), contentType: 'application/json' },
    { what: 'proto key', body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"__proto__":{"uid":"x"}}}', contentType: 'application/json' },
    { what: 'no content type', body: json(review()), contentType: null },
    { what: 'huge number uid', body: json(review({ uid: 1e308 })), contentType: 'application/json' },
    { what: 'NUL bytes', body: '\u0000'.repeat(100), contentType: 'application/json' },
  ];
  return [...sampled, ...fixed];
}

function stringValues(o: Record<string, unknown>): Record<string, unknown> {
  // Random metadata: keep it schema-shaped sometimes and garbage other times.
  return Object.keys(o).length % 2 === 0 ? { labels: Object.fromEntries(Object.keys(o).map((k) => [k, 'v'])) } : { labels: o };
}

/** Deeply nested JSON text (built as text: JSON.stringify itself would overflow the stack). */
function deepJson(depth: number): string {
  return '{"a":['.repeat(depth) + '{}' + ']}'.repeat(depth);
}

t.test('2,000 malformed and random bodies: every one answered with 200 or a declared 4xx', async (t) => {
  // A decide that touches the whole change, like real rules would.
  const decide = recordingDecide((c) => {
    JSON.stringify(c);
    return allow;
  });
  const s = await startServer(t, { decide, bodyLimitBytes: 1024 * 1024 });
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  t.teardown(() => agent.destroy());
  const all = cases();
  t.equal(all.length, TOTAL);
  const statuses = new Map<number, number>();
  const problems: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < all.length) {
      const c = all[next++]!;
      try {
        const res = await send(s.url, '/validate', { ca: s.ca, agent, body: c.body, contentType: c.contentType, timeoutMs: 10_000 });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (![200, 400, 413, 415].includes(res.status)) problems.push(`${c.what}: status ${res.status} ${res.text.slice(0, 200)}`);
        else if (res.status !== 200 && (typeof res.json?.error !== 'string' || typeof res.json?.message !== 'string')) {
          problems.push(`${c.what}: ${res.status} without a JSON error body`);
        } else if (res.status === 200 && res.json?.response?.allowed !== true) problems.push(`${c.what}: 200 without an allowed response`);
        if (c.what === 'valid envelope, random object' && res.status !== 200 && !/labels/.test(res.text)) {
          problems.push(`valid envelope rejected: ${res.status} ${res.text.slice(0, 200)}`);
        }
      } catch (e) {
        problems.push(`${c.what}: no answer (${(e as Error).message})`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  t.same(problems.slice(0, 20), [], 'every body got a declared answer');
  t.equal([...statuses.values()].reduce((a, b) => a + b, 0), TOTAL, 'all answered');
  t.ok((statuses.get(200) ?? 0) > 100, `a fair share were valid (${JSON.stringify(Object.fromEntries(statuses))})`);
  t.ok((statuses.get(400) ?? 0) > 500, 'most were rejected as malformed');
  t.ok((statuses.get(415) ?? 0) > 0);
  t.equal(decide.calls.length, statuses.get(200), 'decide ran exactly for the accepted reviews');

  const health = await send(s.url, '/healthz', { ca: s.ca, method: 'GET', contentType: null });
  t.equal(health.status, 200, 'still alive');
  const ok = await send(s.url, '/validate', { ca: s.ca, body: JSON.stringify(review()) });
  t.equal(ok.status, 200, 'still answering reviews');
  t.notOk(s.lines.some((l) => l.level === 50), 'no error logged');
});
