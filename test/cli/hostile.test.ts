// Hostile objects against `meshguard check`: answered promptly with a clear verdict, never a hang
// (serve's side is in test/cli/serve.test.ts). Timeouts here only detect a hang: the old backtracking
// DNS matcher needed about 17 minutes for the policy below; no assertion depends on the machine's speed.

import { spawnSync } from 'node:child_process';
import t from 'tap';

const root = new URL('../../', import.meta.url).pathname;
const main = `${root}src/cli/main.ts`;
const HOSTILE = `${root}test/fixtures/hostile/dns-freeze.yaml`;

t.test('check answers the freezing DNS policy (the FQDN is reported as not covered)', { timeout: 60_000 }, async (t) => {
  const r = spawnSync(process.execPath, [main, 'check', '--state', `${root}examples/cluster`, '--output', 'json', HOSTILE], { encoding: 'utf8', timeout: 50_000 });
  t.equal(r.status, 1, r.stderr);
  const out = JSON.parse(r.stdout) as { results: { findings: { rule: string; action: string }[] }[] };
  t.same(out.results[0]?.findings.map((f) => [f.rule, f.action]), [['fqdn-without-dns-proxy', 'deny']]);
});
