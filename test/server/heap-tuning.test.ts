// `meshguard serve` turns off V8's allocation-site pretenuring (src/server/heap-tuning.ts). Checked by
// what the flag does, in a child process: objects from an allocation site that once made long-lived
// objects go straight to the old generation with pretenuring, and die young without it.

import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import t from 'tap';

import { tuneHeapForServing } from '../../src/server/heap-tuning.ts';

const moduleUrl = pathToFileURL(new URL('../../src/server/heap-tuning.ts', import.meta.url).pathname).href;

/**
 * Old-generation growth (MB) from 300k short-lived objects made by a site that first made 300k kept
 * ones, after tuneHeapForServing(execArgv) (or nothing, for `execArgv` null).
 */
function oldSpaceGrowthMb(execArgv: string[] | null, nodeFlags: string[] = []): number {
  const script = `
    import v8 from 'node:v8';
    import { tuneHeapForServing } from ${JSON.stringify(moduleUrl)};
    const argv = ${JSON.stringify(execArgv)};
    if (argv !== null) tuneHeapForServing(argv);
    const old = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    function make(i) { return { a: i, b: { c: i, d: [i] } }; }
    const keep = [];
    for (let i = 0; i < 300000; i++) keep.push(make(i));
    gc();
    const before = old();
    let sum = 0;
    for (let i = 0; i < 300000; i++) sum += make(i).a;
    gc({ type: 'minor' });
    gc({ type: 'minor' });
    console.log(JSON.stringify({ mb: (old() - before) / 2 ** 20, kept: keep.length, sum }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--max-semi-space-size=1', ...nodeFlags, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`probe failed (${r.status}): ${r.stderr}`);
  return (JSON.parse(r.stdout) as { mb: number }).mb;
}

t.test('with pretenuring (V8 default) the short-lived objects land in the old generation; serve turns it off', async (t) => {
  const untouched = oldSpaceGrowthMb(null);
  const tuned = oldSpaceGrowthMb([]);
  t.ok(untouched > 4, `V8's default: ${untouched.toFixed(2)} MB of short-lived objects allocated old`);
  t.ok(tuned < 1, `after tuneHeapForServing: ${tuned.toFixed(2)} MB`);
});

t.test("node's own flag on the command line is the operator's choice and is left alone", async (t) => {
  t.equal(tuneHeapForServing(['--allocation-site-pretenuring']), 'node flags');
  t.equal(tuneHeapForServing(['--max-semi-space-size=8', '--no-allocation-site-pretenuring']), 'node flags');
  // Every spelling node 24 accepts on its command line (V8 refuses a value, as in =true).
  for (const spelling of ['-allocation-site-pretenuring', '--no_allocation_site_pretenuring', '-no-allocation-site-pretenuring', '--noallocation-site-pretenuring']) {
    t.equal(tuneHeapForServing([spelling]), 'node flags', spelling);
  }
  t.equal(tuneHeapForServing(['--allocation-site-pretenuring-extra']), 'off', 'another flag that starts the same does not count');
  // Pretenuring explicitly on stays on: the growth is what V8's default gives.
  const kept = oldSpaceGrowthMb(['--allocation-site-pretenuring'], ['--allocation-site-pretenuring']);
  t.ok(kept > 4, `explicitly on: ${kept.toFixed(2)} MB allocated old`);
  t.equal(tuneHeapForServing(['--max-semi-space-size=8']), 'off', 'other flags do not count');
});
