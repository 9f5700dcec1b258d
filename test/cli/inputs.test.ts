// Bounded inputs through the real entry point: every command that reads files refuses devices,
// oversized files and endless streams with exit 2 and one line, and still reads pipes that end.
// Timeouts only detect a hang: an unbounded reader of /dev/zero or `yes` never ends.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';

const root = new URL('../../', import.meta.url).pathname;
const main = `${root}src/cli/main.ts`;
const dir = mkdtempSync(join(tmpdir(), 'meshguard-inputs-'));
const cluster = `${root}examples/cluster`;
const good = `${root}examples/policies/dns-egress-missing.good.yaml`;
const bad = `${root}examples/policies/dns-egress-missing.bad.yaml`;

function sh(script: string) {
  // The entry point with Node 24 (this process's node), from bash for pipes and process substitution.
  return spawnSync('bash', ['-c', `mg() { "$NODE_BIN" "$MAIN" "$@"; }; ${script}`], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, NODE_BIN: process.execPath, MAIN: main },
  });
}

function expectInputError(t: Test, r: ReturnType<typeof sh>, message: RegExp): void {
  t.equal(r.status, 2, `exit 2 (stderr: ${r.stderr})`);
  t.equal(r.stdout, '', 'nothing on stdout');
  t.match(r.stderr, message);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
}

t.test('devices are refused at once, as state, manifest, config and queries', { timeout: 120_000 }, async (t) => {
  expectInputError(t, sh(`mg check --state /dev/zero ${bad}`), /\/dev\/zero: is a character device/);
  expectInputError(t, sh(`mg check --state ${cluster} /dev/zero`), /\/dev\/zero: is a character device/);
  expectInputError(t, sh(`mg check --state ${cluster} --config /dev/zero ${bad}`), /\/dev\/zero: is a character device/);
  expectInputError(t, sh(`mg trace --state ${cluster} --queries /dev/zero`), /\/dev\/zero: is a character device/);
  expectInputError(t, sh(`mg check --state ${cluster} - < /dev/zero`), /<stdin>: is a character device/);
});

t.test('endless streams stop at their bound', { timeout: 120_000 }, async (t) => {
  expectInputError(t, sh(`yes | mg check --state ${cluster} -`), /<stdin>: YAML larger than 16Mi: refused \(raise the bound with --max-yaml-bytes\)/);
  expectInputError(
    t,
    sh(`(echo '['; yes '{},') | mg check --state ${cluster} --max-input-bytes 2Mi -`),
    /<stdin>: larger than 2Mi: refused \(raise the bound with --max-input-bytes\)/,
  );
  expectInputError(t, sh(`mg check --state <(yes) ${bad}`), /YAML larger than 16Mi/);
  // A first read of only a comment tells nothing yet; the next one does (whether the two arrive apart or together).
  expectInputError(t, sh(`(echo '# a comment first'; sleep 0.2; yes) | mg check --state ${cluster} -`), /<stdin>: YAML larger than 16Mi/);
});

t.test('pipes and standard input that end are read as files', { timeout: 120_000 }, async (t) => {
  const viaStdin = sh(`cat ${bad} | mg check --state ${cluster} -`);
  t.equal(viaStdin.status, 1, viaStdin.stderr);
  t.match(viaStdin.stdout, /<stdin>:\d+\): DENIED/);
  const viaSubstitution = sh(`mg check --state <(cat ${cluster}/*.yaml) ${good}`);
  t.equal(viaSubstitution.status, 0, viaSubstitution.stderr);
});

t.test('size flags: a smaller bound refuses, a larger one admits, a bad value is a usage error', { timeout: 120_000 }, async (t) => {
  expectInputError(t, sh(`mg check --state ${cluster} --max-yaml-bytes 1Ki ${bad}`), /YAML larger than 1Ki: refused/);
  const ok = sh(`mg check --state ${cluster} --max-yaml-bytes 64Mi --max-input-bytes 2Gi ${good}`);
  t.equal(ok.status, 0, ok.stderr);
  expectInputError(t, sh(`mg check --state ${cluster} --max-input-bytes lots ${good}`), /--max-input-bytes: not a size/);
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `mode: enforce\n# ${'x'.repeat(4096)}\n`);
  expectInputError(t, sh(`mg rules --config ${config} --max-yaml-bytes 1Ki`), /config\.yaml: YAML larger than 1Ki/);
  const queries = join(dir, 'queries.json');
  writeFileSync(queries, JSON.stringify(Array.from({ length: 200 }, () => ({ from: 'a/b', to: 'c/d', port: 53, protocol: 'UDP' }))));
  expectInputError(t, sh(`mg trace --state ${cluster} --queries ${queries} --max-input-bytes 2Ki`), /queries\.json: larger than 2Ki/);
});

t.test('a label kubectl would refuse is an input error with file and line', { timeout: 60_000 }, async (t) => {
  const f = join(dir, 'label.yaml');
  writeFileSync(f, `apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: p\n  namespace: x\n  labels: {audited: yes}\nspec: {endpointSelector: {}}\n`);
  expectInputError(t, sh(`mg check --state ${cluster} ${f}`), /label\.yaml:5: .*metadata\.labels\.audited is the boolean true/);
});
