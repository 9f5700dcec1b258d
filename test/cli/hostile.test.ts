// Hostile objects and inputs against the real entry point: every one is answered promptly, with a
// clear verdict or exit 2, never a hang. Timeouts here only detect a hang (the old backtracking DNS
// matcher needed about 17 minutes for the policy below); no assertion depends on the machine's speed.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { parse } from 'yaml';

import { makeCerts } from '../helpers/certs.ts';

const root = new URL('../../', import.meta.url).pathname;
const main = `${root}src/cli/main.ts`;
const HOSTILE = `${root}test/fixtures/hostile/dns-freeze.yaml`;
const dir = mkdtempSync(join(tmpdir(), 'meshguard-hostile-'));

t.test('check answers the freezing DNS policy (the FQDN is reported as not covered)', { timeout: 60_000 }, async (t) => {
  const r = spawnSync(process.execPath, [main, 'check', '--state', `${root}examples/cluster`, '--output', 'json', HOSTILE], { encoding: 'utf8', timeout: 50_000 });
  t.equal(r.status, 1, r.stderr);
  const out = JSON.parse(r.stdout) as { results: { findings: { rule: string; action: string }[] }[] };
  t.same(out.results[0]?.findings.map((f) => [f.rule, f.action]), [['fqdn-without-dns-proxy', 'deny']]);
});

function httpsCall(url: string, path: string, ca: Buffer, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      new URL(path, url),
      {
        method: data ? 'POST' : 'GET',
        ca,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        timeout: 30_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer in 30 s')));
    req.end(data);
  });
}

t.test('serve answers the freezing DNS policy and keeps answering health checks', { timeout: 90_000 }, async (t) => {
  const certs = makeCerts(dir);
  const child = spawn(
    process.execPath,
    [main, 'serve', '--host', '127.0.0.1', '--port', '0', '--tls-cert', certs.cert, '--tls-key', certs.key, '--state', `${root}examples/cluster`, '--drain-seconds', '0'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const lines: Record<string, unknown>[] = [];
  let early: ((code: number | null) => void) | undefined;
  const url = await new Promise<string>((resolve, reject) => {
    early = (code) => reject(new Error(`serve exited ${code} before listening`));
    child.once('exit', early);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const rec = JSON.parse(l) as Record<string, unknown>;
      lines.push(rec);
      if (rec.msg === 'meshguard webhook listening') resolve(String(rec.url));
    });
  });
  const ca = readFileSync(certs.caCert);
  const object = parse(readFileSync(HOSTILE, 'utf8')) as { metadata: { name: string; namespace: string } };
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'hostile-1',
      kind: { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' },
      resource: { group: 'cilium.io', version: 'v2', resource: 'ciliumnetworkpolicies' },
      namespace: object.metadata.namespace,
      name: object.metadata.name,
      operation: 'CREATE',
      userInfo: { username: 'mallory' },
      object,
      oldObject: null,
      dryRun: true,
    },
  };
  const answer = await httpsCall(url, '/validate', ca, review);
  t.equal(answer.status, 200);
  const response = answer.json.response as { allowed: boolean; status?: { message: string } };
  t.equal(response.allowed, false);
  t.match(response.status?.message, /fqdn-without-dns-proxy/);
  const health = await httpsCall(url, '/healthz', ca);
  t.equal(health.status, 200, 'the process still answers health checks');
  child.off('exit', early!);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM is honoured: drained and exited 0');
});
