// The Kubernetes client (~0.4 s to import) is loaded only when a live cluster is used: `serve --state`
// and the other file-based commands import state/live.ts through the CLI without paying for it.
import t from 'tap';
import { spawnSync } from 'node:child_process';

t.test('importing the CLI and the state modules does not load @kubernetes/client-node', async (t) => {
  const script = `
    import { createRequire } from 'node:module';
    const require = createRequire(import.meta.url);
    const loaded = () => Object.keys(require('node:module')._cache).filter((k) => k.includes('@kubernetes/client-node')).length;
    await import(${JSON.stringify(new URL('../../src/cli/program.ts', import.meta.url).href)});
    await import(${JSON.stringify(new URL('../../src/state/live.ts', import.meta.url).href)});
    await import(${JSON.stringify(new URL('../../src/state/dump.ts', import.meta.url).href)});
    const { loadSnapshot } = await import(${JSON.stringify(new URL('../../src/state/snapshot.ts', import.meta.url).href)});
    loadSnapshot([${JSON.stringify(new URL('../../examples/cluster', import.meta.url).pathname)}]);
    const before = loaded();
    const live = await import(${JSON.stringify(new URL('../../src/state/live.ts', import.meta.url).href)});
    try { live.loadKubeConfig('/nonexistent/kubeconfig'); } catch {}
    console.log(JSON.stringify({ before, after: loaded() }));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { before: number; after: number };
  t.equal(out.before, 0, 'not loaded by importing the CLI or loading a snapshot');
  t.ok(out.after > 0, 'loaded on first use (the check above sees it)');
});
