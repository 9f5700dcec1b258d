// bench/event-loop-probe.ts preloaded into a process that holds its loop 60 ms of CPU before it
// listens and 120 ms after: the first period must tell the two apart, and carry the CPU time of a block.
// The busy loops are CPU work, so a loaded machine only makes the blocks longer, never shorter.

import t from 'tap';

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { EventLoopFigures } from '../../bench/harness.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

const SCRIPT = `
const busy = (ms) => { const c0 = process.threadCpuUsage(); for (;;) { const c = process.threadCpuUsage(c0); if ((c.user + c.system) / 1000 >= ms) return; } };
const net = require('node:net');
setTimeout(() => {
  busy(60);
  const server = net.createServer().listen(0, '127.0.0.1', () => {
    setTimeout(() => {
      busy(120);
      setTimeout(() => { process.kill(process.pid, 'SIGUSR2'); setTimeout(() => server.close(), 50); }, 30);
    }, 30);
  });
}, 30);
`;

t.test('the first period splits start-up at the first listen and gives each block its CPU time', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'meshguard-probe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'loop.jsonl');
  const child = spawn(process.execPath, ['--import', path.join(ROOT, 'bench/event-loop-probe.ts'), '-e', SCRIPT], {
    env: { ...process.env, MESHGUARD_EVENT_LOOP_FILE: file },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.equal(code, 0);
  const first = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as EventLoopFigures;
  t.type(first.listeningAtMs, 'number', 'the listen was seen');
  t.ok(first.beforeListenMaxMs! >= 55, `before listening: ${first.beforeListenMaxMs} ms (60 ms of work)`);
  // Lower bounds only: a loaded machine stretches wall-clock blocks, and the CPU figures are the work itself.
  t.ok(first.afterListenMaxMs! >= 115, `after listening: ${first.afterListenMaxMs} ms (120 ms of work)`);
  t.ok(first.afterListenCpuMaxMs! >= 110, `CPU after listening: ${first.afterListenCpuMaxMs} ms`);
  const after = first.longestBlocks.find((b) => b.atMs >= first.listeningAtMs!);
  t.ok(after && after.cpuMs! >= 110 && after.ms >= after.cpuMs! - 5, `the block after listening carries its CPU time: ${JSON.stringify(after)}`);
});
