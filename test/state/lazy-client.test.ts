// @kubernetes/client-node costs ~100 MB of RSS and ~0.4 s to import (ADR 0003). It is loaded only for
// kubeconfig users whose credentials come from a plugin: not by the file-based commands, and not by the
// live state of a webhook that authenticates with a token (its service account).
import t from 'tap';
import { spawnSync } from 'node:child_process';

t.test('@kubernetes/client-node is loaded only for plugin credentials', async (t) => {
  const src = (p: string): string => JSON.stringify(new URL(p, import.meta.url).href);
  const script = `
    import { createRequire } from 'node:module';
    import { mkdtempSync, writeFileSync } from 'node:fs';
    import { tmpdir } from 'node:os';
    import { join } from 'node:path';
    import pino from 'pino';
    const require = createRequire(import.meta.url);
    const loaded = () => Object.keys(require('node:module')._cache).filter((k) => k.includes('@kubernetes/client-node')).length;
    await import(${src('../../src/cli/program.ts')});
    await import(${src('../../src/state/dump.ts')});
    const { loadSnapshot } = await import(${src('../../src/state/snapshot.ts')});
    loadSnapshot([${JSON.stringify(new URL('../../examples/cluster', import.meta.url).pathname)}]);
    const files = loaded();

    const { FakeApiserver } = await import(${src('./fake-apiserver.ts')});
    const { LiveSource, collectionPath, listKind } = await import(${src('../../src/state/live.ts')});
    const { KIND_NAMES, KINDS } = await import(${src('../../src/core/kinds.ts')});
    const api = new FakeApiserver();
    await api.start();
    for (const k of KIND_NAMES) if (!KINDS[k].optional) api.serve(collectionPath(k));
    const dir = mkdtempSync(join(tmpdir(), 'lazy-'));
    writeFileSync(join(dir, 'kc'), api.kubeconfigYaml());
    const live = new LiveSource({ logger: pino({ level: 'silent' }), kubeconfigPath: join(dir, 'kc') });
    await live.start();
    const synced = live.synced();
    await live.stop();
    const tokenUser = loaded();

    const plugin = 'process.stdout.write(JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token: "secret-token" } }))';
    const exec = api.kubeconfigYaml().replace('    token: secret-token', '    exec: ' + JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', plugin], interactiveMode: 'Never' }))
      .replace('    server: ', '    insecure-skip-tls-verify: true\\n    server: ');
    writeFileSync(join(dir, 'exec'), exec);
    const { loadKubeApi } = await import(${src('../../src/state/kube-api.ts')});
    const client = loadKubeApi(join(dir, 'exec'));
    const listed = (await listKind(client, 'Namespace')).items.length;
    client.close();
    await api.stop();
    console.log(JSON.stringify({ files, synced, tokenUser, listed, plugin: loaded() }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000, cwd: new URL('.', import.meta.url).pathname });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { files: number; synced: boolean; tokenUser: number; listed: number; plugin: number };
  t.equal(out.files, 0, 'not loaded by importing the CLI or loading a snapshot');
  t.equal(out.synced, true, 'the live state synced from the fake apiserver');
  t.equal(out.tokenUser, 0, 'not loaded by a live state with a token user');
  t.equal(out.listed, 0, 'the exec user listed (no namespaces were created)');
  t.ok(out.plugin > 0, 'loaded for an exec plugin user (so the checks above can see it)');
});
