// canonicalIp and ipFamily answer a canonical IPv4 text (every pod's address) from a scan of its
// characters, not from a parse kept in ipCache (issue 21, heap at 50k pods). The scan must agree with
// the parse on every string: each near miss, and many random ones of digits and dots, are checked
// against ipaddr.js.

import t from 'tap';
import ipaddr from 'ipaddr.js';
import { canonicalIp, ipFamily, isCanonicalIpv4 } from '../../src/policy/cidr.ts';

const parsed = (ip: string): { canonical: string | undefined; family: string | undefined } => {
  if (!ipaddr.isValid(ip)) return { canonical: undefined, family: undefined };
  const a = ipaddr.process(ip);
  return { canonical: a.toString(), family: a.kind() };
};

t.test('near misses', async (t) => {
  const yes = ['0.0.0.0', '10.0.0.1', '255.255.255.255', '192.168.100.200', '1.2.3.4', '10.244.0.0'];
  const no = ['', '1.2.3', '1.2.3.4.5', '256.0.0.1', '01.2.3.4', '1.2.3.04', '1.2.3.', '.1.2.3', '1..2.3', '1.2.3.4 ', ' 1.2.3.4', '0x1.2.3.4', '1.2.3.1000', '::1', '::ffff:1.2.3.4', 'fe80::1', 'a.b.c.d', '1.2.3.-4', '1.2.3.4/32', '0000.0.0.0', '00.0.0.0'];
  for (const ip of yes) {
    t.ok(isCanonicalIpv4(ip), ip);
    t.equal(canonicalIp(ip), ip);
    t.equal(ipFamily(ip), 'ipv4');
  }
  for (const ip of no) {
    t.notOk(isCanonicalIpv4(ip), JSON.stringify(ip));
    t.same({ canonical: canonicalIp(ip), family: ipFamily(ip) }, parsed(ip), `${JSON.stringify(ip)} as the parse says`);
  }
});

t.test('random strings of digits and dots agree with the parse', async (t) => {
  let seed = 7;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  const alphabet = '0123456789.';
  let agreed = 0;
  let canonical = 0;
  for (let k = 0; k < 20_000; k++) {
    let ip = '';
    if (rnd(2) === 0) {
      // Four octets, some out of range or with leading zeros.
      ip = Array.from({ length: 4 }, () => (rnd(5) === 0 ? '0' : '') + String(rnd(300))).join('.');
    } else {
      const len = 1 + rnd(17);
      for (let i = 0; i < len; i++) ip += alphabet[rnd(alphabet.length)];
    }
    const want = parsed(ip);
    const fast = isCanonicalIpv4(ip);
    if (fast) canonical++;
    if (fast !== (want.canonical === ip && want.family === 'ipv4')) t.fail(`isCanonicalIpv4(${ip}) = ${fast}`);
    else if (canonicalIp(ip) !== want.canonical || ipFamily(ip) !== want.family) t.fail(`canonicalIp/ipFamily(${ip})`);
    else agreed++;
  }
  t.equal(agreed, 20_000);
  t.ok(canonical > 1000, `the fast path was taken (${canonical} times)`);
});
