// DNS name matching (toFQDNs, rules.dns) must agree with Cilium's pattern semantics and run in linear
// time whatever the object holds: a backtracking regex built from `*a*a*a*a*a*a*a*a*a*a*a*a*b` froze a
// replica for minutes (hardening issue). Three oracles: worked examples, the regex translation the
// matcher replaced (on inputs too short to backtrack badly), and a dynamic-programming matcher for the
// adversarial inputs.

import t from 'tap';
import fc from 'fast-check';
import { dnsNameMatches, MAX_DNS_TEXT } from '../../src/policy/dns-pattern.ts';

/** The regex translation meshguard used before (Cilium's own approach): the reference on short inputs. */
function regexReference(pattern: string, name: string): boolean {
  const norm = (s: string): string => s.trim().toLowerCase().replace(/\.$/, '');
  const n = norm(name);
  const p = norm(pattern);
  if (p === '*') return true;
  let body = p;
  let prefix = '';
  if (body.startsWith('**.')) {
    prefix = '(?:[-a-z0-9_]+\\.)+';
    body = body.slice(3);
  }
  const parts = body.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp('^' + prefix + parts.join('[-a-z0-9_]*') + '$').test(n);
}

const LABEL_CHAR = /^[-a-z0-9_]$/;

/** O(name x pattern) dynamic programming over the same semantics: never exponential. */
function dpReference(pattern: string, name: string): boolean {
  const norm = (s: string): string => s.trim().toLowerCase().replace(/\.$/, '');
  const n = norm(name);
  let p = norm(pattern);
  if (p === '*') return true;
  let anyLabels = false;
  if (p.startsWith('**.')) {
    anyLabels = true;
    p = p.slice(3);
  }
  const match = (from: number): boolean => {
    // can[i][j]: n[from+i..] matches p[j..]
    const N = n.length - from;
    const M = p.length;
    let next = new Array<boolean>(M + 1).fill(false);
    // i = N (empty rest of name)
    next[M] = true;
    for (let j = M - 1; j >= 0; j--) next[j] = p[j] === '*' && next[j + 1]!;
    for (let i = N - 1; i >= 0; i--) {
      const cur = new Array<boolean>(M + 1).fill(false);
      const c = n[from + i]!;
      for (let j = M - 1; j >= 0; j--) {
        if (p[j] === '*') cur[j] = cur[j + 1]! || (LABEL_CHAR.test(c) && next[j]!);
        else cur[j] = p[j] === c && next[j + 1]!;
      }
      next = cur;
    }
    return next[0]!;
  };
  if (!anyLabels) return match(0);
  // One or more non-empty labels of label characters, then the body.
  for (let i = 0; i < n.length; i++) {
    if (n[i] !== '.') {
      if (!LABEL_CHAR.test(n[i]!)) return false;
      continue;
    }
    if (i === 0 || n[i - 1] === '.') return false;
    if (match(i + 1)) return true;
  }
  return false;
}

t.test('worked examples (Cilium policy language: DNS-based policies)', async (t) => {
  const yes: [string, string][] = [
    ['*', 'anything.at.all'],
    ['*.cilium.io', 'docs.cilium.io'],
    ['**.cilium.io', 'a.b.cilium.io'],
    ['**.cilium.io', 'docs.cilium.io'],
    ['api-*.svc.io', 'api-eu1.svc.io'],
    ['api-*.svc.io', 'api-.svc.io'],
    ['*cilium*.io', 'cilium.io'],
    ['*.Cilium.IO.', 'DOCS.cilium.io'],
    ['sub.*.example.com', 'sub.x_y.example.com'],
    ['a*b*c', 'abc'],
    ['a*b*c', 'axxbyybc'],
    ['**', 'one-label'],
  ];
  const no: [string, string][] = [
    ['*.cilium.io', 'a.b.cilium.io'],
    ['*.cilium.io', 'cilium.io'],
    ['**.cilium.io', 'cilium.io'],
    ['**.cilium.io', '.cilium.io'],
    ['api-*.svc.io', 'apix.svc.io'],
    ['a*b*c', 'acb'],
    ['a*b*c', 'ab%c'],
    ['cilium.io', 'www.cilium.io'],
    ['ab', 'a'],
    ['a*', 'b'],
    ['*a', 'a.a'],
    ['a*b', 'a.b'],
  ];
  for (const [p, n] of yes) t.ok(dnsNameMatches({ matchPattern: p }, n), `${p} matches ${n}`);
  for (const [p, n] of no) t.notOk(dnsNameMatches({ matchPattern: p }, n), `${p} does not match ${n}`);
  t.ok(dnsNameMatches({ matchPattern: ' * ' }, ''), '"*" alone matches every name');
  t.ok(dnsNameMatches({ matchName: 'Cilium.IO.' }, 'cilium.io'), 'matchName: case and trailing dot ignored');
  t.notOk(dnsNameMatches({ matchName: 'cilium.io' }, 'www.cilium.io'), 'matchName is exact');
  t.notOk(dnsNameMatches({}, 'cilium.io'), 'a rule with neither field matches nothing');
});

t.test('a pattern or name the CRD would refuse matches nothing', async (t) => {
  t.notOk(dnsNameMatches({ matchPattern: 'a(b|c)*.io' }, 'ab.io'), 'characters outside [-a-zA-Z0-9_*.]');
  t.notOk(dnsNameMatches({ matchPattern: 'a'.repeat(MAX_DNS_TEXT + 1) }, 'a'.repeat(MAX_DNS_TEXT + 1)), 'longer than 255');
  t.ok(dnsNameMatches({ matchPattern: 'a'.repeat(MAX_DNS_TEXT) }, 'a'.repeat(MAX_DNS_TEXT)), '255 is still a name');
  t.notOk(dnsNameMatches({ matchName: 'a'.repeat(300) }, 'a'.repeat(300)), 'an over-long name is no DNS name');
});

// Short patterns and names over a small alphabet: the regex cannot blow up, so it can be the oracle.
const patternArb = fc
  .tuple(fc.boolean(), fc.array(fc.constantFrom('a', 'b', '-', '_', '*', '.', 'A'), { maxLength: 10 }))
  .map(([sub, cs]) => (sub ? '**.' : '') + cs.join(''));
const nameArb = fc.array(fc.constantFrom('a', 'b', '-', '_', '.', '%', 'B'), { maxLength: 12 }).map((cs) => cs.join(''));

t.test('agrees with the regex translation it replaced', async (t) => {
  let disagreements = 0;
  fc.assert(
    fc.property(patternArb, nameArb, (p, n) => {
      const ok = dnsNameMatches({ matchPattern: p }, n) === regexReference(p, n);
      if (!ok) disagreements++;
      return ok;
    }),
    { numRuns: 20_000, seed: 17 },
  );
  t.equal(disagreements, 0);
});

t.test('adversarial patterns: linear time, same answers as dynamic programming', { timeout: 60_000 }, async (t) => {
  // The case: a backtracking regex takes minutes on this one pair.
  const evil = '*a*a*a*a*a*a*a*a*a*a*a*a*b';
  const forty = 'a'.repeat(40);
  t.notOk(dnsNameMatches({ matchPattern: evil }, forty), 'the freezing pattern does not match forty a');
  t.ok(dnsNameMatches({ matchPattern: evil }, forty + 'b'));

  // Nested wildcards at the CRD's length limit, against long names of the same letters: backtracking
  // would take longer than the age of the universe on most of these.
  const rand = fc.sample(
    fc.tuple(fc.integer({ min: 1, max: 120 }), fc.constantFrom('a', 'ab', 'aa', 'a-'), fc.constantFrom('b', 'c', 'a', ''), fc.integer({ min: 1, max: MAX_DNS_TEXT })),
    { numRuns: 300, seed: 4242 },
  );
  let checked = 0;
  for (const [stars, lit, tail, len] of rand) {
    const pattern = (Array.from({ length: stars }, () => '*' + lit).join('') + '*' + tail).slice(0, MAX_DNS_TEXT);
    const name = lit.repeat(Math.ceil(len / lit.length)).slice(0, len);
    const got = dnsNameMatches({ matchPattern: pattern }, name);
    if (got !== dpReference(pattern, name)) t.fail(`disagrees with DP on ${pattern} / ${name}`);
    checked++;
  }
  t.equal(checked, 300);
  // Many labels: the `**.` prefix and per-label patterns.
  const labels = Array.from({ length: 60 }, () => 'aaa').join('.');
  t.ok(dnsNameMatches({ matchPattern: '**.*a*a*a' }, labels));
  t.notOk(dnsNameMatches({ matchPattern: '**.*a*a*a*a' }, labels));
  t.equal(dnsNameMatches({ matchPattern: '**.*a*a*a*a' }, labels), dpReference('**.*a*a*a*a', labels));
});
