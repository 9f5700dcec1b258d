// End-to-end harness: a real etcd + kube-apiserver on loopback (binaries from
// scripts/prepare-control-plane.sh), kubectl against it, and meshguard run as a separate process and
// registered as a ValidatingWebhookConfiguration.
//
// Every process started here is killed by stop(), by a process exit hook if a test forgets or fails,
// and by a watchdog shell if this test process itself is killed with SIGKILL (so no etcd or apiserver
// outlives a suite). Ports are always picked free, never fixed.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCa, issueCert } from '../helpers/certs.ts';
import { freePort, portTaken } from '../helpers/ports.ts';
import { kubeBins, REPO_ROOT } from '../helpers/kube-bins.ts';

export { freePort };

/** Attempts at starting a server whose port another process took between the check and the bind. */
const PORT_ATTEMPTS = 3;

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type Kubectl = (args: string[], input?: string) => Promise<KubectlResult>;

export interface ControlPlane {
  kubeconfigPath: string;
  kubectl: Kubectl;
  /**
   * Kills kube-apiserver and starts it again on the same port and etcd; resolves when /readyz is ok.
   * `downMs` keeps it down that long first (a longer outage than a plain restart).
   */
  restartApiserver(opts?: { downMs?: number }): Promise<void>;
  stop(): Promise<void>;
  /** Apiserver base URL (https://127.0.0.1:PORT). */
  readonly serverUrl: string;
  /** The apiserver's log so far (for failure messages). */
  logs(): string;
  /** Pids of every process this control plane started (etcd, each apiserver incarnation). */
  pids(): number[];
}

// ---------------------------------------------------------------------------------------------------
// Process bookkeeping

const live = new Set<ChildProcess>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL whatever is still running.
  process.on('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const c of live) c.kill('SIGKILL');
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/**
 * A detached shell that SIGKILLs `child` once this test process is gone (covers SIGKILL of the test
 * runner, where no exit hook runs), and then removes `cleanupDir`. It ends by itself when the child ends.
 */
function watchdog(child: ChildProcess, cleanupDir?: string): void {
  if (!child.pid) return;
  const script = [
    `while kill -0 ${process.pid} 2>/dev/null && kill -0 ${child.pid} 2>/dev/null; do sleep 1; done`,
    `kill -9 ${child.pid} 2>/dev/null`,
    // Only an orphaned run cleans up: while the tests live, stop() owns the directory.
    cleanupDir ? `if ! kill -0 ${process.pid} 2>/dev/null; then sleep 1; rm -rf '${cleanupDir.replace(/'/g, '')}'; fi` : ':',
    'exit 0',
  ].join('; ');
  const w = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  w.unref();
}

interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

function startProcess(name: string, cmd: string, args: string[], logFile: string, cleanupDir?: string): Proc {
  installExitHooks();
  writeFileSync(logFile, '');
  let out = '';
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
  live.add(child);
  watchdog(child, cleanupDir);
  const onData = (b: Buffer): void => {
    const s = b.toString('utf8');
    out += s;
    if (out.length > 4_000_000) out = out.slice(-2_000_000); // bounded memory on chatty processes
    appendFileSync(logFile, s);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      out += `\n[${name} exited: code=${code} signal=${signal}]\n`;
      resolve(code);
    });
    child.once('error', (err) => {
      live.delete(child);
      out += `\n[${name} failed to start: ${err.message}]\n`;
      resolve(-1);
    });
  });
  return { child, exited, output: () => out };
}

async function killProcess(p: Proc, graceMs = 10_000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------------------------------
// Small utilities

interface HttpGetOptions {
  ca?: string;
  token?: string;
  timeoutMs?: number;
}

/** GET a URL; resolves {status, body}, or status 0 on a connection error. Never rejects. */
export function httpGet(url: string, opts: HttpGetOptions = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      {
        method: 'GET',
        ...(opts.ca ? { ca: opts.ca } : {}),
        headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
        timeout: opts.timeoutMs ?? 3_000,
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', () => resolve({ status: 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
    req.end();
  });
}

/** Polls `check` every `intervalMs` until it returns true, or throws after `timeoutMs` with `what`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  intervalMs = 200,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
}

function runKubectl(kubectlBin: string, kubeconfigPath: string): Kubectl {
  return (args, input) =>
    new Promise((resolve) => {
      const child = spawn(kubectlBin, ['--kubeconfig', kubeconfigPath, ...args], {
        stdio: ['pipe', 'pipe', 'pipe'],
        cwd: REPO_ROOT,
      });
      live.add(child);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      child.on('error', (e) => (stderr += e.message));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        live.delete(child);
        resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
      });
      child.stdin.on('error', () => undefined); // kubectl may exit before reading all input
      child.stdin.end(input ?? '');
    });
}

// ---------------------------------------------------------------------------------------------------
// Control plane

const ADMIN_TOKEN_BYTES = 24;
/**
 * SIGTERM, then SIGKILL after this long. With clients watching (meshguard's informers) the apiserver's
 * graceful shutdown can take over 10 s; the watches are already cut by then, which is what the
 * restart tests need, so the rest is not worth waiting for.
 */
const APISERVER_GRACE_MS = 4_000;
/** Where the `default/kubernetes` EndpointSlice points (no endpoint reconciler runs; see below). */
export const APISERVER_ENDPOINT = { ip: '10.0.0.10', port: 6443 } as const;

export interface ControlPlaneOptions {
  /**
   * Client certificates (PEM files) the apiserver presents to admission webhooks, by the name it looks
   * them up under: a URL webhook's host:port ("127.0.0.1:8443"), a Service webhook's "<svc>.<ns>.svc",
   * "*.<ns>.svc", or "*" for every webhook. Written to the kubeconfig of a WebhookAdmissionConfiguration
   * given to the apiserver with --admission-control-config-file, as a control-plane admin would.
   */
  readonly webhookClientCerts?: Readonly<Record<string, { readonly cert: string; readonly key: string }>>;
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const bins = kubeBins();
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-e2e-'));
  const pki = join(dir, 'pki');
  mkdirSync(pki);
  const admissionConfig = opts.webhookClientCerts ? writeWebhookAdmissionConfig(pki, opts.webhookClientCerts) : undefined;

  // Serving certificate of the apiserver (kubectl verifies it), service-account signing keys.
  const ca = makeCa(pki, 'e2e-apiserver-ca');
  const serving = issueCert(pki, ca, { name: 'apiserver', cn: 'kube-apiserver', sans: ['127.0.0.1', 'localhost'] });
  const saKey = join(pki, 'sa.key');
  const saPub = join(pki, 'sa.pub');
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', saKey]);
  openssl(['pkey', '-in', saKey, '-pubout', '-out', saPub]);

  // Admin identity: a static bearer token in system:masters.
  const token = Buffer.from(crypto.getRandomValues(new Uint8Array(ADMIN_TOKEN_BYTES))).toString('hex');
  const tokenFile = join(pki, 'tokens.csv');
  writeFileSync(tokenFile, `${token},e2e-admin,e2e-admin,"system:masters"\n`, { mode: 0o600 });

  const procs: Proc[] = [];
  let etcd: Proc | undefined;
  let apiserver: Proc | undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (apiserver) await killProcess(apiserver, APISERVER_GRACE_MS);
    if (etcd) await killProcess(etcd);
    for (const p of procs) await killProcess(p, 2_000);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    // etcd. A port taken between the check and the bind is retried on fresh ports (see helpers/ports.ts).
    let etcdUrl = '';
    for (let attempt = 1; ; attempt++) {
      const etcdClient = await freePort();
      const etcdPeer = await freePort();
      etcdUrl = `http://127.0.0.1:${etcdClient}`;
      const url = etcdUrl;
      const proc = startProcess('etcd', bins.etcd, [
        '--name=e2e',
        `--data-dir=${join(dir, `etcd-${attempt}`)}`,
        `--listen-client-urls=${url}`,
        `--advertise-client-urls=${url}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=e2e=http://127.0.0.1:${etcdPeer}`,
        '--initial-cluster-state=new',
        '--logger=zap',
        '--log-level=warn',
      ], join(dir, 'etcd.log'), dir);
      procs.push(proc);
      etcd = proc;
      try {
        await waitFor('etcd /health', async () => {
          if (proc.child.exitCode !== null) throw new Error(`etcd exited:\n${proc.output().slice(-3000)}`);
          return (await httpGet(`${url}/health`)).status === 200;
        }, 30_000);
        break;
      } catch (e) {
        if (attempt >= PORT_ATTEMPTS || !portTaken(proc.output())) throw e;
        await killProcess(proc);
      }
    }

    // kube-apiserver
    let port = await freePort();
    let serverUrl = `https://127.0.0.1:${port}`;
    const caPem = readFileSync(ca.caCert, 'utf8');
    const apiserverArgs = (): string[] => [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--token-auth-file=${tokenFile}`,
      '--authorization-mode=RBAC',
      '--service-cluster-ip-range=10.96.0.0/12',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      // No controller-manager runs: nothing would create the service-account tokens this plugin demands.
      '--disable-admission-plugins=ServiceAccount',
      // Nothing must rewrite default/kubernetes to 127.0.0.1; the tests own that EndpointSlice.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=true',
      ...(admissionConfig ? [`--admission-control-config-file=${admissionConfig}`] : []),
      '--profiling=false',
      '--v=1',
    ];
    const startApiserver = (): Proc => {
      const p = startProcess('kube-apiserver', bins.kubeApiserver, apiserverArgs(), join(dir, 'apiserver.log'));
      procs.push(p);
      return p;
    };
    const waitReady = async (p: Proc): Promise<void> => {
      await waitFor('kube-apiserver /readyz', async () => {
        if (p.child.exitCode !== null) throw new Error(`kube-apiserver exited:\n${p.output().slice(-4000)}`);
        return (await httpGet(`${serverUrl}/readyz`, { ca: caPem, token })).status === 200;
      }, 90_000, 250);
    };
    for (let attempt = 1; ; attempt++) {
      const proc = startApiserver();
      apiserver = proc;
      try {
        await waitReady(proc);
        break;
      } catch (e) {
        if (attempt >= PORT_ATTEMPTS || !portTaken(proc.output())) throw e;
        await killProcess(proc);
        port = await freePort();
        serverUrl = `https://127.0.0.1:${port}`;
      }
    }

    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml(serverUrl, caPem, token), { mode: 0o600 });
    const kubectl = runKubectl(bins.kubectl, kubeconfigPath);

    await waitFor('default namespaces', async () => {
      const r = await kubectl(['get', 'namespace', 'default', 'kube-system', '-o', 'name']);
      return r.code === 0;
    }, 30_000);
    await bootstrapCluster(kubectl);

    return {
      kubeconfigPath,
      kubectl,
      serverUrl,
      logs: () => apiserver?.output() ?? '',
      pids: () => procs.flatMap((p) => (p.child.pid ? [p.child.pid] : [])),
      async restartApiserver(opts) {
        if (stopped) throw new Error('control plane stopped');
        if (apiserver) await killProcess(apiserver, APISERVER_GRACE_MS);
        if (opts?.downMs) await sleep(opts.downMs);
        apiserver = startApiserver();
        await waitReady(apiserver);
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The AdmissionConfiguration that makes the apiserver authenticate to webhooks: the
 * ValidatingAdmissionWebhook plugin reads client credentials per webhook host from a kubeconfig.
 */
function writeWebhookAdmissionConfig(pki: string, certs: Readonly<Record<string, { readonly cert: string; readonly key: string }>>): string {
  const kubeconfig = join(pki, 'webhook-kubeconfig.yaml');
  writeFileSync(kubeconfig, [
    'apiVersion: v1',
    'kind: Config',
    'users:',
    ...Object.entries(certs).flatMap(([name, c]) => [
      `- name: ${JSON.stringify(name)}`,
      '  user:',
      `    client-certificate: ${JSON.stringify(c.cert)}`,
      `    client-key: ${JSON.stringify(c.key)}`,
    ]),
    '',
  ].join('\n'), { mode: 0o600 });
  const config = join(pki, 'admission-config.yaml');
  writeFileSync(config, [
    'apiVersion: apiserver.config.k8s.io/v1',
    'kind: AdmissionConfiguration',
    'plugins:',
    '- name: ValidatingAdmissionWebhook',
    '  configuration:',
    '    apiVersion: apiserver.config.k8s.io/v1',
    '    kind: WebhookAdmissionConfiguration',
    `    kubeConfigFile: ${JSON.stringify(kubeconfig)}`,
    '',
  ].join('\n'));
  return config;
}

function kubeconfigYaml(server: string, caPem: string, token: string): string {
  const caData = Buffer.from(caPem).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: e2e',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${caData}`,
    'users:',
    '- name: e2e-admin',
    '  user:',
    `    token: ${token}`,
    'contexts:',
    '- name: e2e',
    '  context: {cluster: e2e, user: e2e-admin, namespace: default}',
    'current-context: e2e',
    '',
  ].join('\n');
}

const CRD_DIR = join(REPO_ROOT, 'test', 'e2e', 'crds');

/** CRDs (waited to Established) and the default/kubernetes EndpointSlice a real cluster would have. */
async function bootstrapCluster(kubectl: Kubectl): Promise<void> {
  const files = readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml')).sort();
  const crds = await kubectl(['apply', '--server-side', ...files.flatMap((f) => ['-f', join(CRD_DIR, f)])]);
  if (crds.code !== 0) throw new Error(`installing CRDs failed: ${crds.stderr}`);
  const est = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  if (est.code !== 0) throw new Error(`CRDs not Established: ${est.stderr}`);
  // The apiserver's endpoint reconciler is off, so write the apiserver endpoints a cluster would publish
  // (meshguard's apiserver-egress rules read them). A private address, as on a real control plane.
  const slice = await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'kubernetes',
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'kubernetes', 'endpointslice.kubernetes.io/managed-by': 'e2e.meshguard.io' },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: [APISERVER_ENDPOINT.ip], conditions: { ready: true } }],
    ports: [{ name: 'https', port: APISERVER_ENDPOINT.port, protocol: 'TCP' }],
  }));
  if (slice.code !== 0) throw new Error(`creating default/kubernetes EndpointSlice failed: ${slice.stderr}`);
}

// ---------------------------------------------------------------------------------------------------
// meshguard as a separate process

export interface MeshguardOptions {
  kubeconfigPath: string;
  configFile?: string;
  port?: number;
  /** Port of the plain-HTTP monitoring listener (--metrics-port); picked free when not given. */
  metricsPort?: number;
  /** SIGTERM drain in seconds (default 0 in tests: stop() should not wait for a drain). */
  drainSeconds?: number;
  /** Extra `serve` arguments. */
  extraArgs?: string[];
  /** How long to wait for /readyz 200 (default 60 s); 0 = do not wait. */
  readyTimeoutMs?: number;
}

export interface Meshguard {
  /** https://127.0.0.1:PORT (registerWebhook adds /validate). */
  url: string;
  port: number;
  /** http://127.0.0.1:METRICS_PORT, the monitoring listener (/metrics, /healthz, /readyz). */
  metricsUrl: string;
  /** base64 of the PEM CA that signed meshguard's serving certificate (a webhook's caBundle). */
  caBundle: string;
  /** PEM of that CA (for direct HTTPS calls in tests). */
  caPem: string;
  /** GET a path on meshguard's HTTPS port (status 0 when it does not answer). */
  get(path: string): Promise<{ status: number; body: string }>;
  /** GET /metrics from the monitoring listener. */
  metrics(): Promise<{ status: number; body: string }>;
  /** SIGTERM (SIGKILL after 15 s); `{ kill: true }` = SIGKILL at once (a crash). */
  stop(opts?: { kill?: boolean }): Promise<void>;
  logs(): string;
}

const NODE = join(REPO_ROOT, 'node_modules', '.bin', 'node');

export async function startMeshguard(opts: MeshguardOptions): Promise<Meshguard> {
  // A port taken between the check and the bind is retried on a fresh one, unless the caller chose it.
  for (let attempt = 1; ; attempt++) {
    const port = opts.port ?? (await freePort());
    const metricsPort = opts.metricsPort ?? (await freePort());
    try {
      return await launchMeshguard(opts, port, metricsPort);
    } catch (e) {
      const chosen = opts.port !== undefined && opts.metricsPort !== undefined;
      if (chosen || attempt >= PORT_ATTEMPTS || !(e instanceof Error) || !portTaken(e.message)) throw e;
    }
  }
}

async function launchMeshguard(opts: MeshguardOptions, port: number, metricsPort: number): Promise<Meshguard> {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-e2e-mg-'));
  const ca = makeCa(dir, 'e2e-meshguard-ca');
  const cert = issueCert(dir, ca, { cn: 'meshguard', sans: ['127.0.0.1', 'localhost'] });
  const caPem = readFileSync(ca.caCert, 'utf8');
  const url = `https://127.0.0.1:${port}`;
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  const args = [
    join(REPO_ROOT, 'bin', 'meshguard.js'),
    'serve',
    '--kubeconfig', opts.kubeconfigPath,
    '--tls-cert', cert.cert,
    '--tls-key', cert.key,
    '--host', '127.0.0.1',
    '--port', String(port),
    '--metrics-port', String(metricsPort),
    '--drain-seconds', String(opts.drainSeconds ?? 0),
    ...(opts.configFile ? ['--config', opts.configFile] : []),
    ...(opts.extraArgs ?? []),
  ];
  // node_modules/.bin/node is the binary `npx node` runs (Node 24); started directly so that the pid we
  // signal is meshguard itself, not an npx wrapper.
  const proc = startProcess('meshguard', NODE, args, join(dir, 'meshguard.log'), dir);
  let stopped = false;
  const mg: Meshguard = {
    url,
    port,
    metricsUrl,
    caBundle: Buffer.from(caPem).toString('base64'),
    caPem,
    get: (path) => httpGet(`${url}${path}`, { ca: caPem }),
    metrics: () => httpGet(`${metricsUrl}/metrics`),
    logs: () => proc.output(),
    async stop(o) {
      if (stopped) return;
      stopped = true;
      if (o?.kill) {
        proc.child.kill('SIGKILL');
        await proc.exited;
      } else {
        await killProcess(proc, 15_000);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const readyTimeout = opts.readyTimeoutMs ?? 60_000;
  if (readyTimeout > 0) {
    try {
      await waitFor('meshguard /readyz', async () => {
        if (proc.child.exitCode !== null) throw new Error(`meshguard exited:\n${proc.output().slice(-3000)}`);
        return (await mg.get('/readyz')).status === 200;
      }, readyTimeout, 200);
    } catch (e) {
      await mg.stop({ kill: true });
      throw e;
    }
  }
  return mg;
}

// ---------------------------------------------------------------------------------------------------
// Webhook registration

export interface WebhookRule {
  apiGroups: string[];
  apiVersions: string[];
  resources: string[];
  operations: string[];
  scope?: '*' | 'Cluster' | 'Namespaced';
}

/** The policy kinds meshguard judges (CREATE/UPDATE/DELETE), as deploy/ registers them. */
export const POLICY_RULES: WebhookRule[] = [
  { apiGroups: ['cilium.io'], apiVersions: ['v2'], resources: ['ciliumnetworkpolicies', 'ciliumclusterwidenetworkpolicies'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
  { apiGroups: ['networking.k8s.io'], apiVersions: ['v1'], resources: ['networkpolicies'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
  { apiGroups: ['security.istio.io'], apiVersions: ['v1'], resources: ['authorizationpolicies', 'peerauthentications'], operations: ['CREATE', 'UPDATE', 'DELETE'] },
  { apiGroups: [''], apiVersions: ['v1'], resources: ['namespaces'], operations: ['CREATE', 'UPDATE'] },
];

export interface WebhookProbe {
  /** A manifest applied with --dry-run=server once the configuration is written. */
  manifest: string;
  /** True once the apiserver demonstrably uses the webhook (default: refused, message names meshguard's rule). */
  done(r: KubectlResult): boolean;
}

export interface RegisterWebhookOptions {
  url: string;
  caBundle: string;
  failurePolicy: 'Fail' | 'Ignore';
  timeoutSeconds: number;
  rules: WebhookRule[];
  /** ValidatingWebhookConfiguration name (default meshguard-e2e; re-registering updates it). */
  name?: string;
  /** Namespaces whose objects are never sent (default: none excluded). */
  excludeNamespaces?: string[];
  /** What to wait for; null = return right after the configuration is written. Default: DEFAULT_PROBE. */
  probe?: WebhookProbe | null;
  probeTimeoutMs?: number;
}

/**
 * A known-bad object for the readiness probe: a default-deny egress CiliumNetworkPolicy over pods that
 * then lose cluster DNS. It needs the objects of `probeFixture()` in the cluster (namespace
 * e2e-probe with a client pod, and kube-dns), which `ensureProbeFixture` creates.
 */
export const PROBE_NAMESPACE = 'e2e-probe';
export const DEFAULT_PROBE: WebhookProbe = {
  manifest: JSON.stringify({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'probe-egress-lockdown', namespace: PROBE_NAMESPACE },
    spec: {
      endpointSelector: {},
      egress: [{ toEndpoints: [{ matchLabels: { app: 'nothing-here' } }] }],
    },
  }),
  done: (r) => r.code !== 0 && /dns-egress-missing/.test(r.stderr),
};

export async function registerWebhook(kubectl: Kubectl, opts: RegisterWebhookOptions): Promise<void> {
  const u = new URL(opts.url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/validate';
  const name = opts.name ?? 'meshguard-e2e';
  const config = {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name },
    webhooks: [
      {
        name: 'e2e.meshguard.io',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: opts.failurePolicy,
        matchPolicy: 'Equivalent',
        timeoutSeconds: opts.timeoutSeconds,
        clientConfig: { url: u.toString(), caBundle: opts.caBundle },
        ...(opts.excludeNamespaces?.length
          ? {
              namespaceSelector: {
                matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: opts.excludeNamespaces }],
              },
            }
          : {}),
        rules: opts.rules,
      },
    ],
  };
  const r = await kubectl(['apply', '-f', '-'], JSON.stringify(config));
  if (r.code !== 0) throw new Error(`registering webhook ${name} failed: ${r.stderr}`);
  const probe = opts.probe === undefined ? DEFAULT_PROBE : opts.probe;
  if (!probe) return;
  if (probe === DEFAULT_PROBE) await ensureProbeFixture(kubectl);
  let last: KubectlResult | undefined;
  try {
    await waitFor('the webhook to reject a known-bad dry-run', async () => {
      last = await kubectl(['apply', '--dry-run=server', '-f', '-'], probe.manifest);
      return probe.done(last);
    }, opts.probeTimeoutMs ?? 30_000, 300);
  } catch (e) {
    throw new Error(`${(e as Error).message}; last kubectl: code=${last?.code} ${last?.stderr ?? ''}${last?.stdout ?? ''}`);
  }
}

/** Removes a ValidatingWebhookConfiguration (default meshguard-e2e); missing is fine. */
export async function unregisterWebhook(kubectl: Kubectl, name = 'meshguard-e2e'): Promise<void> {
  const r = await kubectl(['delete', 'validatingwebhookconfiguration', name, '--ignore-not-found', '--wait=true']);
  if (r.code !== 0) throw new Error(`deleting webhook ${name} failed: ${r.stderr}`);
}

// ---------------------------------------------------------------------------------------------------
// Cluster fixtures shared by scenarios

/** kube-system/kube-dns Service and one CoreDNS pod behind it (Pending forever: no kubelet; enough). */
export const KUBE_DNS = [
  {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
    spec: {
      selector: { 'k8s-app': 'kube-dns' },
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    },
  },
  pod('kube-system', 'coredns-0', { 'k8s-app': 'kube-dns' }, [
    { name: 'dns', containerPort: 53, protocol: 'UDP' },
    { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
  ]),
];

/** A Pod API object (never scheduled here; meshguard reads labels, ports, serviceAccount). */
export function pod(
  namespace: string,
  name: string,
  labels: Record<string, string>,
  ports: { name?: string; containerPort: number; protocol?: string }[] = [],
  extra: { serviceAccountName?: string; annotations?: Record<string, string>; sidecar?: boolean } = {},
): Record<string, unknown> {
  const containers: Record<string, unknown>[] = [{ name: 'app', image: 'registry.example/app:1', ports }];
  if (extra.sidecar) containers.push({ name: 'istio-proxy', image: 'registry.example/proxyv2:1' });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels, ...(extra.annotations ? { annotations: extra.annotations } : {}) },
    spec: {
      ...(extra.serviceAccountName ? { serviceAccountName: extra.serviceAccountName } : {}),
      containers,
    },
  };
}

/** `kubectl apply` a list of objects; throws with kubectl's stderr on failure. */
export async function applyObjects(kubectl: Kubectl, objects: unknown[]): Promise<void> {
  const r = await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
  if (r.code !== 0) throw new Error(`kubectl apply failed (${r.code}): ${r.stderr}`);
}

export async function ensureProbeFixture(kubectl: Kubectl): Promise<void> {
  await applyObjects(kubectl, [
    ...KUBE_DNS,
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: PROBE_NAMESPACE } },
    pod(PROBE_NAMESPACE, 'client', { app: 'client' }),
  ]);
}
