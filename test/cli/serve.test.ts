// `meshguard serve` as a real process: flags, config and state errors end with exit 2 before listening;
// on the example state it answers reviews over HTTPS and drains and exits 0 on SIGTERM.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

import { makeCerts } from '../helpers/certs.ts';
import { freePort } from '../helpers/ports.ts';
import { threadNice } from '../helpers/thread-nice.ts';
import { until } from '../helpers/until.ts';

const root = new URL('../../', import.meta.url).pathname;
const main = `${root}src/cli/main.ts`;
const dir = mkdtempSync(join(tmpdir(), 'meshguard-serve-'));
const certs = makeCerts(dir);
const base = ['serve', '--host', '127.0.0.1', '--port', '0', '--tls-cert', certs.cert, '--tls-key', certs.key];

/** Two contexts, both on unreachable servers: c (current) and other. */
const unreachableKubeconfig = join(dir, 'unreachable.kubeconfig');
writeFileSync(
  unreachableKubeconfig,
  [
    'apiVersion: v1',
    'kind: Config',
    'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}, {name: o, cluster: {server: "https://127.0.0.1:2", insecure-skip-tls-verify: true}}]',
    'contexts: [{name: c, context: {cluster: c, user: u}}, {name: other, context: {cluster: o, user: u}}]',
    'users: [{name: u, user: {token: not-a-real-token}}]',
    'current-context: c',
    '',
  ].join('\n'),
);

function runSync(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000 });
}

t.test('startup errors: exit 2, one line, before listening', async (t) => {
  const badConfig = join(dir, 'bad.yaml');
  writeFileSync(badConfig, 'mode: enforce\nrulez: {}\n');
  const cases: [string[], RegExp][] = [
    [[...base, '--state', `${root}examples/cluster`, '--port', 'https'], /--port: not a whole number/],
    [[...base, '--state', `${root}examples/cluster`, '--port', '70000'], /--port: must be between 0 and 65535/],
    [[...base, '--state', `${root}examples/cluster`, '--config', badConfig], /bad\.yaml:2: rulez: unknown key/],
    [[...base, '--state', join(dir, 'missing')], /missing: cannot read: ENOENT/],
    [[...base, '--state', `${root}examples/cluster`, '--kubeconfig', 'x'], /either --state or --kubeconfig/],
    [['serve', '--host', '127.0.0.1', '--port', '0', '--state', `${root}examples/cluster`, '--tls-cert', join(dir, 'none.crt'), '--tls-key', certs.key], /TLS certificate/],
    [[...base, '--state', `${root}examples/cluster`, '--log-level', 'loud'], /--log-level: must be one of/],
    [[...base, '--state', `${root}examples/cluster`, '--verdict-cache', 'lots'], /--verdict-cache: not a whole number/],
    [[...base, '--state', `${root}examples/cluster`, '--verdict-cache', '20000'], /--verdict-cache: must be between 0 and 16384/],
    [[...base, '--state', `${root}examples/cluster`, '--metrics-port', 'http'], /--metrics-port: not a whole number/],
    [[...base, '--state', `${root}examples/cluster`, '--port', '9443', '--metrics-port', '9443'], /--metrics-port: must differ from --port/],
    [[...base, '--state', `${root}examples/cluster`, '--max-connections', '0'], /--max-connections: must be between 1 and 65535/],
    [[...base, '--state', `${root}examples/cluster`, '--v8-worker-nice', '20'], /--v8-worker-nice: must be between 0 and 19/],
    [[...base, '--state', `${root}examples/cluster`, '--v8-worker-nice', '-1'], /--v8-worker-nice: not a whole number/],
    [[...base, '--state', `${root}examples/cluster`, '--client-ca', join(dir, 'none-ca.crt')], /client CA.*none-ca\.crt/],
    [[...base, '--state', `${root}examples/cluster`, '--client-ca', certs.cert], /is not a CA certificate/],
    [[...base, '--kubeconfig', unreachableKubeconfig, '--context', 'prod'], /unreachable\.kubeconfig: kubeconfig: no context "prod" \(it has c, other\)$/m],
    [[...base, '--state', `${root}examples/cluster`, '--context', 'other'], /--context selects a live cluster; it does not go with --state/],
  ];
  for (const [args, err] of cases) {
    const r = runSync(args);
    t.equal(r.status, 2, args.join(' '));
    t.equal(r.stdout, '', 'nothing on stdout');
    t.match(r.stderr, err);
    t.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  const env = { ...process.env, MESHGUARD_POD_LIST_ENCODING: 'xml' };
  const r = spawnSync(process.execPath, [main, ...base, '--kubeconfig', unreachableKubeconfig], { encoding: 'utf8', timeout: 60_000, env });
  t.equal(r.status, 2, 'MESHGUARD_POD_LIST_ENCODING=xml');
  t.match(r.stderr, /^meshguard: MESHGUARD_POD_LIST_ENCODING: must be json or protobuf, not "xml"$/m);
});

function post(url: string, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = request(
      new URL(path, url),
      { method: 'POST', ca: readFileSync(certs.caCert), headers: { 'content-type': 'application/json', 'content-length': data.length }, timeout: 10_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(data);
  });
}

function getText(url: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, url), { ca: readFileSync(certs.caCert), timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function get(url: string, path: string): Promise<number> {
  return (await getText(url, path)).status;
}

/** The "listening" log line (stdout is pino JSON). */
interface ListeningRecord {
  url: string;
  metricsUrl?: string;
  clientAuth?: boolean;
  maxConnections?: number;
  allocationSitePretenuring?: string;
  cluster?: string;
}

function listeningRecord(child: ChildProcess): Promise<ListeningRecord> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('serve did not start in 30 s')), 30_000);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line) as Partial<ListeningRecord> & { msg?: string };
        if (rec.msg === 'meshguard webhook listening' && rec.url) {
          clearTimeout(timer);
          resolve({ ...rec, url: rec.url });
        }
      } catch {
        // not JSON: ignore
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited early with ${code}`));
    });
  });
}

/** The URL from the "listening" log line. */
async function listeningUrl(child: ChildProcess): Promise<string> {
  return (await listeningRecord(child)).url;
}

t.test('serves the example state, answers a review, drains and exits 0 on SIGTERM', async (t) => {
  // A config that only moves the rule pages: denials must link there.
  const config = join(dir, 'docs.yaml');
  writeFileSync(config, 'docs:\n  baseUrl: https://docs.example.com/meshguard/rules\n');
  const child = spawn(process.execPath, [main, ...base, '--state', `${root}examples/cluster`, '--config', config, '--drain-seconds', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const logLines: { msg?: string; uid?: string; cached?: boolean; time?: number }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      logLines.push(JSON.parse(l) as { msg?: string });
    } catch {
      // not JSON: ignore
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const listening = await listeningRecord(child);
  const url = listening.url;
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.equal(listening.allocationSitePretenuring, 'off', "serve turned V8's allocation-site pretenuring off (src/server/heap-tuning.ts)");
  t.equal(await get(url, '/healthz'), 200);
  // A snapshot is synced before listening, so the warm-up (about 0.5 s of decisions) starts at once,
  // without waiting for a probe; readiness answers 503 "warming up" while it runs, then 200. Probes
  // from now on see that, as far as they are in time to (on a busy machine the warm-up may be over
  // before the first one: how many 503s there are is timing, their order and reason are not).
  const warmedUp = () => logLines.find((l) => l.msg === 'decision path warmed up');
  const probes: { status: number; text: string; at: number }[] = [];
  const probe = async () => probes.push({ ...(await getText(url, '/readyz')), at: Date.now() });
  do await probe();
  while (probes.at(-1)!.status === 503);
  await probe();
  const notReady = probes.slice(0, -2);
  t.same(notReady.map((p) => JSON.parse(p.text).status), notReady.map(() => 'warming up'), `503 only while warming up (${notReady.length} probes)`);
  t.same(probes.slice(-2).map((p) => p.status), [200, 200], 'then ready, and it stays so');
  // The warm-up started by itself: its end is logged whether or not a probe came. The line comes by
  // the child's stdout, apart from the answers: await it, then compare the child's timestamp with
  // when the first 200 arrived (one system clock: no window, only an order).
  await until('the warm-up end logged', () => warmedUp() !== undefined);
  const firstReady = probes.at(-2)!.at;
  t.ok(warmedUp()!.time! <= firstReady, `the warm-up logged its end (at ${warmedUp()!.time}) before readiness (${firstReady})`);
  // It began with the costly requests' code, decided on a sample of the state (verdict/warmup-sample.ts).
  t.ok(((warmedUp() as { onSample?: number }).onSample ?? 0) > 0, 'the warm-up decided the costly requests on a sample of the state');
  // Once warmed up, V8's workers run 5 nice steps behind the main thread by default (--v8-worker-nice;
  // src/server/worker-priority.ts), read back from /proc.
  const priorityLine = () => logLines.find((l) => l.msg === 'V8 worker thread priority') as { v8WorkerPriority?: unknown; time?: number } | undefined;
  await until('the V8 worker priority logged', () => priorityLine() !== undefined);
  t.ok(logLines.indexOf(priorityLine()!) > logLines.indexOf(warmedUp()!), 'set after the warm-up (logged after its end)');
  if (process.platform === 'linux') {
    const threads = threadNice(child.pid!);
    const mainNice = threads.find((th) => th.tid === child.pid)!.nice;
    const workers = threads.filter((th) => th.name === 'V8Worker');
    // No error (a refusal would say why here), every worker found and raised.
    t.same(priorityLine()!.v8WorkerPriority, { nice: Math.min(19, mainNice + 5), threads: workers.length, changed: mainNice < 19 ? workers.length : 0 });
    t.ok(workers.length > 0 && workers.every((w) => w.nice === Math.min(19, mainNice + 5)), `V8Worker threads at ${workers.map((w) => w.nice).join(', ')}; main thread at ${mainNice}`);
  }

  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '7c1f0e7a-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Namespace' },
      resource: { group: '', version: 'v1', resource: 'namespaces' },
      operation: 'CREATE',
      name: 'team-z',
      object: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-z' } },
      userInfo: { username: 'alice' },
    },
  };
  const r = await post(url, '/validate', review);
  t.equal(r.status, 200);
  t.match(r.json, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: review.request.uid, allowed: true } });

  // The README's example request: a default-deny egress in green, which cuts DNS and the API server.
  const example = JSON.parse(readFileSync(`${root}examples/admission-review.json`, 'utf8')) as { request: { uid: string } };
  const denied = await post(url, '/validate', example);
  t.equal(denied.status, 200);
  const resp = denied.json.response as { uid: string; allowed: boolean; status: { code: number; message: string } };
  t.equal(resp.uid, example.request.uid);
  t.equal(resp.allowed, false);
  t.equal(resp.status.code, 403);
  t.match(resp.status.message, /\[dns-egress-missing\]/);
  t.match(resp.status.message, /\[apiserver-egress-missing\]/);
  t.match(resp.status.message, /\[dns-egress-missing\] .* Docs: https:\/\/docs\.example\.com\/meshguard\/rules\/dns-egress-missing\.md($|\n)/, 'linked under the configured base');

  // The same request again (a dry run, then the apply): answered from the verdict cache, same answer.
  const repeat = { ...example, request: { ...example.request, uid: '7c1f0e7a-0000-4000-8000-000000000002', dryRun: true } };
  const again = await post(url, '/validate', repeat);
  t.same({ ...(again.json.response as object), uid: '' }, { ...resp, uid: '' });
  const logged = (uid: string) => logLines.find((l) => l.msg === 'admission decision' && l.uid === uid);
  // The decision lines come by the child's stdout, apart from the answers: wait for them.
  await until('both decisions logged', () => logged(example.request.uid) !== undefined && logged(repeat.request.uid) !== undefined);
  t.equal(logged(example.request.uid)?.cached, undefined, 'first decision evaluated');
  t.equal(logged(repeat.request.uid)?.cached, true, 'repeat answered from the cache');

  child.kill('SIGTERM');
  t.equal(await exited, 0, `exit 0 after the drain (stderr: ${stderr})`);
});

t.test('answers the policy whose DNS pattern froze a replica, keeps answering probes, honours SIGTERM', { timeout: 90_000 }, async (t) => {
  const child = spawn(process.execPath, [main, ...base, '--state', `${root}examples/cluster`, '--drain-seconds', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await listeningUrl(child);
  const object = parseYaml(readFileSync(`${root}test/fixtures/hostile/dns-freeze.yaml`, 'utf8')) as { metadata: { name: string; namespace: string } };
  const answer = await post(url, '/validate', {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'hostile-1',
      kind: { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' },
      resource: { group: 'cilium.io', version: 'v2', resource: 'ciliumnetworkpolicies' },
      namespace: object.metadata.namespace,
      name: object.metadata.name,
      operation: 'CREATE',
      userInfo: { username: 'mallory' },
      object,
      oldObject: null,
      dryRun: true,
    },
  });
  t.equal(answer.status, 200);
  const response = answer.json.response as { allowed: boolean; status?: { message: string } };
  t.equal(response.allowed, false);
  t.match(response.status?.message, /fqdn-without-dns-proxy/, 'the FQDN is reported as not covered by the DNS rule');
  t.equal(await get(url, '/healthz'), 200, 'the process still answers health checks');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM is honoured: drained and exited 0');
});

t.test('live source that cannot sync: listening but not ready; SIGTERM still exits 0', async (t) => {
  const child = spawn(process.execPath, [main, ...base, '--kubeconfig', unreachableKubeconfig, '--drain-seconds', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const listening = await listeningRecord(child);
  const url = listening.url;
  t.equal(listening.cluster, `${unreachableKubeconfig} (context c)`, 'the listening line says which cluster is watched');
  t.equal(await get(url, '/healthz'), 200);
  t.equal(await get(url, '/readyz'), 503, 'not ready before the first sync');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('--context watches that context instead of current-context', async (t) => {
  const child = spawn(process.execPath, [main, ...base, '--kubeconfig', unreachableKubeconfig, '--context', 'other', '--drain-seconds', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  t.equal((await listeningRecord(child)).cluster, `${unreachableKubeconfig} (context other)`);
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test("node's own pretenuring flag is left as given, --v8-worker-nice 0 leaves V8's workers alone, and the log says so", async (t) => {
  const child = spawn(process.execPath, ['--allocation-site-pretenuring', main, ...base, '--state', `${root}examples/cluster`, '--drain-seconds', '0', '--v8-worker-nice', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines: { msg?: string; v8WorkerPriority?: unknown }[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as { msg?: string });
    } catch {
      // not JSON: ignore
    }
  });
  const listening = await listeningRecord(child);
  t.equal(listening.allocationSitePretenuring, 'node flags');
  await until('the V8 worker priority logged', () => lines.some((l) => l.msg === 'V8 worker thread priority'));
  t.equal(lines.find((l) => l.msg === 'V8 worker thread priority')!.v8WorkerPriority, 'off');
  if (process.platform === 'linux') {
    const threads = threadNice(child.pid!);
    const mainNice = threads.find((th) => th.tid === child.pid)!.nice;
    t.ok(threads.every((th) => th.nice === mainNice), `every thread at the main thread's ${mainNice}`);
  }
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('--metrics-port, --client-ca and --max-connections reach the server', async (t) => {
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [
    main, ...base, '--state', `${root}examples/cluster`, '--drain-seconds', '0',
    '--metrics-port', String(metricsPort), '--client-ca', certs.caCert, '--max-connections', '7',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const listening = await listeningRecord(child);
  t.equal(listening.metricsUrl, `http://127.0.0.1:${metricsPort}`);
  t.equal(listening.clientAuth, true);
  t.equal(listening.maxConnections, 7);
  const metrics = await fetch(`${listening.metricsUrl}/metrics`);
  t.equal(metrics.status, 200);
  t.match(await metrics.text(), /meshguard_connections_dropped_total 0/);
  t.equal((await fetch(`${listening.metricsUrl}/healthz`)).status, 200);
  t.equal(await get(listening.url, '/metrics'), 401, 'nothing but the probes without a client certificate');
  const r = await post(listening.url, '/validate', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
  t.equal(r.status, 401);
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});
