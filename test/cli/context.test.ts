// --context NAME on the commands that read a live cluster (check, snapshot; serve in serve.test.ts): the
// named kubeconfig context is read instead of current-context, and an unknown one is exit 2, one line.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { runCli } from '../../src/cli/program.ts';
import { KIND_NAMES, KINDS } from '../../src/core/kinds.ts';
import { collectionPath } from '../../src/state/live.ts';
import { FakeApiserver } from '../state/fake-apiserver.ts';
import { FAKE_RULES } from '../verdict/fake-rules.ts';

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { rules: FAKE_RULES, io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) } });
  return { code, stdout, stderr };
}

/** A cluster holding one namespace, `name`. */
async function cluster(name: string): Promise<FakeApiserver> {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
  api.put(collectionPath('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return api;
}

const shop = await cluster('shop');
const bank = await cluster('bank');
const dir = t.testdir({
  // current-context is shop; bank is the other context.
  kubeconfig: JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'shop',
    clusters: [{ name: 'shop', cluster: { server: shop.url } }, { name: 'bank', cluster: { server: bank.url } }],
    users: [{ name: 'admin', user: { token: 'secret-token' } }],
    contexts: [{ name: 'shop', context: { cluster: 'shop', user: 'admin' } }, { name: 'bank', context: { cluster: 'bank', user: 'admin' } }],
  }),
  // fake-orphan-policy denies a policy whose namespace is not in the cluster.
  'policy.yaml': 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: bank}\nspec: {endpointSelector: {}}\n',
});
const kubeconfig = join(dir, 'kubeconfig');
const policy = join(dir, 'policy.yaml');

t.test('check --context judges against that context\'s cluster', async (t) => {
  const current = await run(['check', '--kubeconfig', kubeconfig, '-o', 'json', policy]);
  t.equal(current.code, 1, 'current-context (shop) has no namespace bank: denied');
  const other = await run(['check', '--kubeconfig', kubeconfig, '--context', 'bank', '-o', 'json', policy]);
  t.equal(other.code, 0, other.stderr);
  t.match(JSON.parse(other.stdout), { results: [{ namespace: 'bank', allowed: true }] });
  // --context alone reads the kubectl chain ($KUBECONFIG here), like kubectl --context.
  const before = process.env.KUBECONFIG;
  process.env.KUBECONFIG = kubeconfig;
  t.teardown(() => (before === undefined ? delete process.env.KUBECONFIG : (process.env.KUBECONFIG = before)));
  t.equal((await run(['check', '--context', 'bank', policy])).code, 0);
});

t.test('snapshot --context lists that context\'s cluster', async (t) => {
  const r = await run(['snapshot', '--kubeconfig', kubeconfig, '--context', 'bank', '-o', 'json']);
  t.equal(r.code, 0, r.stderr);
  const names = (JSON.parse(r.stdout) as { items: { kind: string; metadata: { name: string } }[] }).items.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name);
  t.same(names, ['bank']);
});

t.test('an unknown context, or --context with --state, is exit 2 with one line and nothing on stdout', async (t) => {
  const cases: [string[], string | RegExp][] = [
    [['check', '--kubeconfig', kubeconfig, '--context', 'prod', policy], `meshguard: ${kubeconfig}: kubeconfig: no context "prod" (it has shop, bank)\n`],
    [['snapshot', '--kubeconfig', kubeconfig, '--context', 'prod'], `meshguard: ${kubeconfig}: kubeconfig: no context "prod" (it has shop, bank)\n`],
    [['check', '--state', policy, '--context', 'bank', policy], 'meshguard: --context selects a live cluster; it does not go with --state\n'],
  ];
  for (const [argv, err] of cases) {
    const r = await run(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.equal(r.stdout, '');
    t.equal(r.stderr, err);
  }
});
