// `meshguard snapshot` in-process against the fake apiserver: where it writes, in which format, and the
// old `-o FILE` usage that keeps working with a notice.
import t, { type Test } from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

import { runCli } from '../../src/cli/program.ts';
import { KIND_NAMES, KINDS } from '../../src/state/kinds.ts';
import { collectionPath } from '../../src/state/live.ts';
import { FakeApiserver } from '../state/fake-apiserver.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, { io: { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) } });
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
