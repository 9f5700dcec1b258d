// `meshguard snapshot` in-process against the fake apiserver: where it writes, in which format, and the
// old `-o FILE` usage that keeps working with a notice.
import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

import { runCli } from '../../src/cli/program.ts';
import { KIND_NAMES, KINDS } from '../../src/core/kinds.ts';
import { collectionPath } from '../../src/state/live.ts';
import { FakeApiserver } from '../state/fake-apiserver.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], stderrIsTTY = false): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), stderrIsTTY } });
  return { code, stdout, stderr };
}

/** A fake cluster with every required kind served, one namespace and two pods; its kubeconfig file. */
async function cluster(t: Test): Promise<{ api: FakeApiserver; kubeconfig: string; dir: string }> {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
  api.put(collectionPath('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  for (const name of ['a', 'b']) api.put(collectionPath('Pod'), { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop' }, spec: { containers: [] } });
  const dir = t.testdir({});
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfigYaml());
  return { api, kubeconfig, dir };
}

const podNames = (doc: { items: { kind: string; metadata: { name: string } }[] }) => doc.items.filter((o) => o.kind === 'Pod').map((o) => o.metadata.name);

t.test('-o names the format, --file the file; without --file the snapshot goes to stdout', async (t) => {
  const { kubeconfig, dir } = await cluster(t);
  const yaml = await run(['snapshot', '--kubeconfig', kubeconfig]);
  t.equal(yaml.code, 0, yaml.stderr);
  t.match(yaml.stdout, /^# meshguard snapshot of /, 'YAML by default');
  t.same(podNames(parse(yaml.stdout)), ['a', 'b']);

  const json = await run(['snapshot', '--kubeconfig', kubeconfig, '-o', 'json']);
  t.equal(json.code, 0, json.stderr);
  t.same(podNames(JSON.parse(json.stdout)), ['a', 'b'], 'JSON with -o json');
  t.notMatch(json.stderr, /deprecated/);

  const toFile = join(dir, 'state.yaml');
  const asJson = await run(['snapshot', '--kubeconfig', kubeconfig, '--file', toFile, '--output', 'JSON']);
  t.equal(asJson.code, 0, asJson.stderr);
  t.equal(asJson.stdout, '', 'nothing on stdout when writing a file');
  t.same(podNames(JSON.parse(readFileSync(toFile, 'utf8'))), ['a', 'b'], '-o wins over the file name');

  const byName = join(dir, 'state.json');
  t.equal((await run(['snapshot', '--kubeconfig', kubeconfig, '--file', byName])).code, 0);
  t.same(podNames(JSON.parse(readFileSync(byName, 'utf8'))), ['a', 'b'], 'a .json file without -o gets JSON');
});

t.test('the old usage, -o FILE, still writes the file, with a one-line notice on stderr', async (t) => {
  const { kubeconfig, dir } = await cluster(t);
  const file = join(dir, 'old.json');
  const r = await run(['snapshot', '--kubeconfig', kubeconfig, '-o', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '');
  t.same(podNames(JSON.parse(readFileSync(file, 'utf8'))), ['a', 'b'], 'JSON for a .json file, as before');
  const notice = r.stderr.split('\n').filter((l) => l.includes('deprecated'));
  t.same(notice, [`meshguard: "-o ${file}" as the file to write is deprecated: use --file ${file} (-o/--output now takes the format, yaml or json)`]);

  const long = join(dir, 'old.yaml');
  const r2 = await run(['snapshot', '--kubeconfig', kubeconfig, '--output', long]);
  t.equal(r2.code, 0, r2.stderr);
  t.match(readFileSync(long, 'utf8'), /^# meshguard snapshot of /);
  t.match(r2.stderr, `use --file ${long}`);

  const dash = await run(['snapshot', '--kubeconfig', kubeconfig, '-o', '-']);
  t.equal(dash.code, 0);
  t.match(dash.stdout, /^# meshguard snapshot of /, '-o - still means standard output');
  t.match(dash.stderr, 'use --file -');
});

t.test('a file given twice, or a format that is not one, is a usage error before anything is read', async (t) => {
  const { api, kubeconfig, dir } = await cluster(t);
  const before = api.requests.length;
  const r = await run(['snapshot', '--kubeconfig', kubeconfig, '--file', join(dir, 'x.yaml'), '-o', 'xml']);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  t.equal(r.stderr, 'meshguard: -o/--output: must be yaml or json (got "xml"); the file is --file\n');
  t.equal(api.requests.length, before, 'the cluster was not read');
  t.notOk(existsSync(join(dir, 'x.yaml')));
});

t.test('stderr says what was read: objects per kind, kinds not installed, the file written', async (t) => {
  const { kubeconfig, dir, api } = await cluster(t);
  const file = join(dir, 'state.json');
  const r = await run(['snapshot', '--kubeconfig', kubeconfig, '--file', file]);
  t.equal(r.code, 0);
  t.equal(
    r.stderr,
    `meshguard: read 3 objects from ${api.url}: Namespace 1, Pod 2, Node 0, Service 0, EndpointSlice 0, ConfigMap 0, Deployment 0, ` +
      'ServiceAccount 0, RoleBinding 0, ClusterRoleBinding 0, MutatingWebhookConfiguration 0, ValidatingWebhookConfiguration 0, NetworkPolicy 0\n' +
      'meshguard: not installed (no CRD served; empty in the snapshot): CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy, AuthorizationPolicy, PeerAuthentication, Gateway\n' +
      `meshguard: wrote ${file} (JSON)\n`,
    'no progress when stderr is not a terminal (CI logs): the summary only',
  );
  api.serve(collectionPath('CiliumNetworkPolicy'));
  api.put(collectionPath('CiliumNetworkPolicy'), { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'p', namespace: 'shop' }, spec: { endpointSelector: {} } });
  const toStdout = await run(['snapshot', '--kubeconfig', kubeconfig]);
  const lines = toStdout.stderr.trimEnd().split('\n');
  t.equal(lines.length, 2, 'no "wrote" line when the snapshot goes to stdout');
  t.match(lines[0], /^meshguard: read 4 objects from .*, NetworkPolicy 0, CiliumNetworkPolicy 1$/);
  t.notMatch(lines[1], /CiliumNetworkPolicy,/, 'an installed CRD is not reported missing');
});

t.test('on a terminal, progress is shown in place while listing, then erased', async (t) => {
  const { kubeconfig } = await cluster(t);
  const r = await run(['snapshot', '--kubeconfig', kubeconfig, '-o', 'json'], true);
  t.equal(r.code, 0);
  t.match(r.stderr, '\r\x1b[Kmeshguard: listing Namespace: 0', 'a line per list, rewritten in place');
  t.match(r.stderr, '\r\x1b[Kmeshguard: listing ConfigMap in kube-system: 0');
  t.match(r.stderr, /\r\x1b\[Kmeshguard: read 3 objects from /, 'the progress line is erased before the summary');
  t.notMatch(r.stdout, /\x1b/, 'stdout holds only the snapshot');
  t.equal(JSON.parse(r.stdout).kind, 'List');
});
