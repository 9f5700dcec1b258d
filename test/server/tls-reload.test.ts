// Certificate rotation without a restart, over real HTTPS: the files are swapped the way the kubelet
// updates a mounted Secret (a new timestamped directory, then an atomic rename of the `..data` symlink)
// while clients keep sending; no request may fail, and new connections must get the new certificate.

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { createServer } from '../../src/server/server.ts';
import { issueCert, makeCerts, type ServingCert } from '../helpers/certs.ts';
import { fakeSource, memoryLogger, postReview, recordingDecide, review, send } from './harness.ts';

/** A Secret volume as the kubelet lays it out: tls.crt -> ..data/tls.crt, ..data -> ..<version>. */
class SecretVolume {
  readonly dir: string;
  #version = 0;
  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }
  get certFile(): string {
    return join(this.dir, 'tls.crt');
  }
  get keyFile(): string {
    return join(this.dir, 'tls.key');
  }
  /** Publishes a pair atomically, like the kubelet's AtomicWriter. */
  publish(pair: ServingCert): void {
    const version = `..2026_11_21_${++this.#version}`;
    mkdirSync(join(this.dir, version));
    copyFileSync(pair.cert, join(this.dir, version, 'tls.crt'));
    copyFileSync(pair.key, join(this.dir, version, 'tls.key'));
    symlinkSync(version, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.#version === 1) {
      symlinkSync('..data/tls.crt', this.certFile);
      symlinkSync('..data/tls.key', this.keyFile);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits on conditions over counters that client loops update: each update re-checks the waiters. */
function progress(): { update(): void; until(cond: () => boolean): Promise<void> } {
  const waiting = new Set<() => void>();
  return {
    update() {
      for (const check of [...waiting]) check();
    },
    until(cond) {
      return new Promise((resolve) => {
        const check = (): void => {
          if (!cond()) return;
          waiting.delete(check);
          resolve();
        };
        waiting.add(check);
        check();
      });
    },
  };
}

const isReload = (l: Record<string, unknown>): boolean => l.msg === 'tls: serving certificate reloaded';

t.test('rotation through a Secret volume while requests run: zero failures, new serial served', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = makeCerts(join(dir, 'issued-1'));
  const second = issueCert(join(dir, 'issued-2'), first);
  t.not(first.serial, second.serial);
  const volume = new SecretVolume(join(dir, 'volume'));
  volume.publish(first);

  const log = memoryLogger();
  const server = await createServer({
    source: fakeSource(), decide: recordingDecide(), tlsCertFile: volume.certFile, tlsKeyFile: volume.keyFile,
    host: '127.0.0.1', port: 0, metricsPort: 0, drainSeconds: 0, logger: log.logger, tlsDebounceMs: 100, tlsPollSeconds: 0,
  });
  t.teardown(() => server.shutdown());
  const url = await server.listen();
  const ca = readFileSync(first.caCert);
  t.equal(server.tlsSerial, first.serial);

  // Where the rotation stands: 'before' until the new pair is published, 'after' once the server has
  // installed it (so any connection opened from then on must get it).
  type Phase = 'before' | 'rotating' | 'after';
  let phase = 'before' as Phase;
  // Clients: 4 keep-alive loops, plus one loop that opens a fresh connection per request.
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const progressed = progress();
  let stop = false;
  let ok = 0;
  const failures: string[] = [];
  const fresh: { serial: string; startedIn: Phase; answeredIn: Phase }[] = [];
  const keepAliveLoop = async () => {
    while (!stop) {
      try {
        const res = await postReview(url, review(), { ca, agent, timeoutMs: 5000 });
        if (res.status === 200 && res.json?.response?.allowed === true) ok++;
        else failures.push(`status ${res.status}`);
      } catch (e) {
        failures.push((e as Error).message);
      }
      progressed.update();
    }
  };
  const freshLoop = async () => {
    while (!stop) {
      const startedIn = phase;
      try {
        const res = await postReview(url, review(), { ca, timeoutMs: 5000 });
        if (res.status === 200) ok++;
        else failures.push(`status ${res.status}`);
        fresh.push({ serial: res.serial, startedIn, answeredIn: phase });
      } catch (e) {
        failures.push((e as Error).message);
      }
      progressed.update();
      await sleep(5);
    }
  };
  const loops = [keepAliveLoop(), keepAliveLoop(), keepAliveLoop(), keepAliveLoop(), freshLoop()];
  const count = (f: (s: (typeof fresh)[number]) => boolean) => fresh.filter(f).length;

  // Traffic first, on both kinds of connection, then the rotation.
  await progressed.until(() => failures.length > 0 || (ok >= 20 && count((s) => s.answeredIn === 'before') >= 3));
  const okBefore = ok;
  phase = 'rotating';
  volume.publish(second);
  // The watch and the debounce install the new pair: wait for the reload itself, however long it takes.
  const reloaded = await log.waitFor(isReload);
  t.equal(reloaded.serial, second.serial);
  t.equal(server.tlsSerial, second.serial, 'reloaded from the directory watch');
  phase = 'after';
  const okAtReload = ok;
  // Traffic continues past the reload, including new connections opened after it.
  await progressed.until(() => failures.length > 0 || (ok > okAtReload + 20 && count((s) => s.startedIn === 'after') >= 3));
  stop = true;
  await Promise.all(loops);

  t.same(failures, [], 'no request failed during the rotation');
  t.ok(okBefore > 0 && ok > okBefore + 20, `requests kept flowing (${okBefore} before, ${ok} in all)`);
  // Answered before the new pair was even published: the old certificate. Opened after it was installed:
  // the new one. (Connections opened in between may get either.)
  const before = fresh.filter((s) => s.answeredIn === 'before');
  const after = fresh.filter((s) => s.startedIn === 'after');
  t.ok(before.length > 0 && before.every((s) => s.serial === first.serial), 'old serial before the rotation');
  t.ok(after.length > 0 && after.every((s) => s.serial === second.serial), 'new connections get the new serial');
  const probe = await send(url, '/healthz', { ca, method: 'GET', contentType: null });
  t.equal(probe.serial, second.serial);
  t.equal(log.lines.filter(isReload).length, 1, 'reloaded once');
  const m = await send(server.metricsUrl!, '/metrics', { ca, method: 'GET', contentType: null });
  t.match(m.text, /meshguard_tls_reloads_total\{result="success"\} 1\b/);
  t.match(m.text, /meshguard_tls_reloads_total\{result="failure"\} 0\b/);
});

t.test('a half-written or mismatched pair is not installed; the old one keeps serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = makeCerts(join(dir, 'a'));
  const second = issueCert(join(dir, 'b'), first);
  const live = join(dir, 'live');
  mkdirSync(live);
  const certFile = join(live, 'tls.crt');
  const keyFile = join(live, 'tls.key');
  copyFileSync(first.cert, certFile);
  copyFileSync(first.key, keyFile);

  const { logger, lines } = memoryLogger();
  // Long debounce: the test drives reloads with reloadTls() so each intermediate state is checked.
  const server = await createServer({
    source: fakeSource(), decide: recordingDecide(), tlsCertFile: certFile, tlsKeyFile: keyFile,
    host: '127.0.0.1', port: 0, metricsPort: 0, drainSeconds: 0, logger, tlsDebounceMs: 60_000, tlsPollSeconds: 0,
  });
  t.teardown(() => server.shutdown());
  const url = await server.listen();
  const ca = readFileSync(first.caCert);
  const serialNow = async () => (await send(url, '/healthz', { ca, method: 'GET', contentType: null })).serial;

  // New certificate written, key not yet: mismatch.
  copyFileSync(second.cert, certFile);
  t.equal(await server.reloadTls(), 'failed');
  t.equal(await serialNow(), first.serial, 'mismatched pair not installed');
  t.equal(await server.reloadTls(), 'failed', 'same broken pair: still failed');
  t.equal(lines.filter((l) => l.msg?.toString().startsWith('tls: new certificate/key not usable')).length, 1, 'logged once');

  // Key half-written.
  const key = readFileSync(second.key, 'utf8');
  writeFileSync(keyFile, key.slice(0, Math.floor(key.length / 2)));
  t.equal(await server.reloadTls(), 'failed');
  t.equal(await serialNow(), first.serial, 'truncated key not installed');

  // Key missing for a moment (mid-rename).
  rmSync(keyFile);
  t.equal(await server.reloadTls(), 'failed');
  t.equal(await serialNow(), first.serial);

  // Whole pair present.
  writeFileSync(keyFile, key);
  t.equal(await server.reloadTls(), 'reloaded');
  t.equal(await serialNow(), second.serial);
  t.equal(await server.reloadTls(), 'unchanged');

  const m = await send(server.metricsUrl!, '/metrics', { ca, method: 'GET', contentType: null });
  t.match(m.text, /meshguard_tls_reloads_total\{result="success"\} 1\b/);
  t.match(m.text, /meshguard_tls_reloads_total\{result="failure"\} 3\b/);
});

t.test('polling picks up a change the watch did not report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = makeCerts(join(dir, 'a'));
  const second = issueCert(join(dir, 'b'), first);
  // The served files live in a directory of their own; the watch only sees that directory, so a change
  // made by swapping the directory itself (a symlinked directory elsewhere) is found by the poll.
  const real1 = join(dir, 'real1');
  const real2 = join(dir, 'real2');
  mkdirSync(real1);
  mkdirSync(real2);
  copyFileSync(first.cert, join(real1, 'tls.crt'));
  copyFileSync(first.key, join(real1, 'tls.key'));
  copyFileSync(second.cert, join(real2, 'tls.crt'));
  copyFileSync(second.key, join(real2, 'tls.key'));
  const mount = join(dir, 'mount');
  symlinkSync(real1, mount);
  const log = memoryLogger();
  const server = await createServer({
    source: fakeSource(), decide: recordingDecide(), tlsCertFile: join(mount, 'tls.crt'), tlsKeyFile: join(mount, 'tls.key'),
    host: '127.0.0.1', port: 0, drainSeconds: 0, logger: log.logger, tlsDebounceMs: 50, tlsPollSeconds: 0.2,
  });
  t.teardown(() => server.shutdown());
  await server.listen();
  symlinkSync(real2, join(dir, 'mount.tmp'));
  renameSync(join(dir, 'mount.tmp'), mount);
  // The poll (every 0.2 s) finds the new pair: wait for the reload, however long it takes.
  const reloaded = await log.waitFor(isReload);
  t.equal(reloaded.serial, second.serial);
  t.equal(server.tlsSerial, second.serial, 'reloaded by the poll');
});
