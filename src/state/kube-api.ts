// Access to the kube-apiserver for the live state: which server, with which TLS settings and
// credentials, and a GET that returns the response stream (lists read it whole, watches line by line).
//
// Kubeconfigs are read here (YAML, the kubectl chain: --kubeconfig, $KUBECONFIG, ~/.kube/config, then
// the in-cluster service account) and requests go through node:https. @kubernetes/client-node is loaded
// only for users whose credentials come from a plugin (`exec`, `auth-provider`): importing it costs
// about 100 MB of RSS and 0.4 s, a third of the webhook's memory at 50k pods (ADR 0003), and the
// deployed webhook authenticates with its service account token, which needs none of it.

import { existsSync, readFileSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { InputError } from '../core/errors.ts';

/** Where an in-cluster pod finds its service account token and the cluster CA. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Re-read token files this often: bound service account tokens are rotated by the kubelet (client-go: 1 min). */
const TOKEN_FILE_TTL_MS = 60_000;

export interface KubeGetOptions {
  readonly signal?: AbortSignal;
  /** The Accept header (default application/json). */
  readonly accept?: string;
}

/** A kube-apiserver with credentials. */
export interface KubeApi {
  /** The server URL (https://host:port, or http:// for a local test server). */
  readonly server: string;
  /** Where the settings came from: a kubeconfig file and context, or the in-cluster service account. */
  readonly source: string;
  /** GET a path (with query). Resolves once the response headers arrive; the body is the stream. */
  get(pathAndQuery: string, opts?: KubeGetOptions): Promise<IncomingMessage>;
  /**
   * Send a write (POST, PUT, PATCH, DELETE) with a JSON body; resolves to the status and the whole
   * response body. meshguard writes only its own policy reports and its audit Lease.
   */
  send(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', pathAndQuery: string, body?: unknown, contentType?: string): Promise<KubeResponse>;
  /** Close idle keep-alive connections. */
  close(): void;
}

export interface KubeResponse {
  readonly status: number;
  readonly body: string;
}

/** Read a whole response body as text. */
export async function readBody(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res) text += chunk as string;
  return text;
}

// ---------------------------------------------------------------------------------------------------
// kubeconfig

interface Named<T> {
  name: string;
  value: T;
}
interface ClusterEntry {
  server?: string;
  'certificate-authority'?: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
  'proxy-url'?: string;
}
interface UserEntry {
  token?: string;
  tokenFile?: string;
  'client-certificate'?: string;
  'client-certificate-data'?: string;
  'client-key'?: string;
  'client-key-data'?: string;
  username?: string;
  password?: string;
  as?: string;
  'as-groups'?: string[];
  exec?: unknown;
  'auth-provider'?: unknown;
}
interface ContextEntry {
  cluster?: string;
  user?: string;
}

/** The parts of one or more kubeconfig files that name the current cluster and user (first file wins). */
interface MergedConfig {
  files: string[];
  currentContext?: string;
  clusters: Map<string, { entry: ClusterEntry; dir: string }>;
  users: Map<string, { entry: UserEntry; dir: string }>;
  contexts: Map<string, ContextEntry>;
}

function namedList<T>(doc: Record<string, unknown>, key: string, inner: string, file: string): Named<T>[] {
  const v = doc[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new InputError(`kubeconfig: ${key} must be a list`, { file });
  return v.map((e: unknown, i) => {
    const o = e as Record<string, unknown> | null;
    if (!o || typeof o !== 'object' || typeof o['name'] !== 'string') throw new InputError(`kubeconfig: ${key}[${i}] has no name`, { file });
    const value = (o[inner] ?? {}) as T;
    if (typeof value !== 'object' || value === null) throw new InputError(`kubeconfig: ${key}[${i}].${inner} must be a map`, { file });
    return { name: o['name'], value };
  });
}

function readKubeconfigFile(file: string, into: MergedConfig): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new InputError(`cannot load kubeconfig: ${(e as Error).message}`, { file });
  }
  const parsed = parseDocument(text);
  if (parsed.errors.length > 0) {
    const err = parsed.errors[0]!;
    throw new InputError(`kubeconfig is not valid YAML: ${err.message.split('\n')[0]}`, { file, ...(err.linePos ? { line: err.linePos[0].line } : {}) });
  }
  const doc = (parsed.toJS() ?? {}) as Record<string, unknown>;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new InputError('kubeconfig must be a map', { file });
  const dir = path.dirname(path.resolve(file));
  into.files.push(file);
  const cc = doc['current-context'];
  if (into.currentContext === undefined && typeof cc === 'string' && cc !== '') into.currentContext = cc;
  for (const c of namedList<ClusterEntry>(doc, 'clusters', 'cluster', file)) if (!into.clusters.has(c.name)) into.clusters.set(c.name, { entry: c.value, dir });
  for (const u of namedList<UserEntry>(doc, 'users', 'user', file)) if (!into.users.has(u.name)) into.users.set(u.name, { entry: u.value, dir });
  for (const x of namedList<ContextEntry>(doc, 'contexts', 'context', file)) if (!into.contexts.has(x.name)) into.contexts.set(x.name, x.value);
}

/** TLS and credential settings, resolved from a kubeconfig or the service account. */
interface Settings {
  server: string;
  source: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  servername?: string;
  token?: string;
  tokenFile?: string;
  basic?: string;
  impersonate?: { user: string; groups: string[] };
  /** The user's credentials come from a plugin: client-node computes them from this kubeconfig (JSON). */
  plugin?: string;
}

function fileOrData(entry: Record<string, unknown>, fileKey: string, dataKey: string, dir: string, source: string): Buffer | undefined {
  const data = entry[dataKey];
  if (typeof data === 'string' && data !== '') return Buffer.from(data, 'base64');
  const f = entry[fileKey];
  if (typeof f !== 'string' || f === '') return undefined;
  const p = path.resolve(dir, f);
  try {
    return readFileSync(p);
  } catch (e) {
    throw new InputError(`kubeconfig ${fileKey}: cannot read ${p}: ${(e as Error).message}`, { file: source });
  }
}

/** At most this many context names in an error (a kubeconfig may hold hundreds). */
const CONTEXTS_NAMED = 10;

function fromKubeconfig(files: string[], context?: string): Settings {
  const merged: MergedConfig = { files: [], clusters: new Map(), users: new Map(), contexts: new Map() };
  for (const f of files) readKubeconfigFile(f, merged);
  const where = { file: files.join(path.delimiter) };
  // As kubectl --context: the named context instead of current-context.
  const name = context ?? merged.currentContext;
  if (!name) throw new InputError('kubeconfig has no current-context', where);
  const ctx = merged.contexts.get(name);
  if (!ctx && context !== undefined) {
    const names = [...merged.contexts.keys()];
    const known = names.length === 0 ? 'it has none' : `it has ${names.slice(0, CONTEXTS_NAMED).join(', ')}${names.length > CONTEXTS_NAMED ? ` and ${names.length - CONTEXTS_NAMED} more` : ''}`;
    throw new InputError(`kubeconfig: no context "${name}" (${known})`, where);
  }
  if (!ctx) throw new InputError(`kubeconfig: current-context "${name}" is not among its contexts`, where);
  const cluster = ctx.cluster !== undefined ? merged.clusters.get(ctx.cluster) : undefined;
  if (!cluster || typeof cluster.entry.server !== 'string' || cluster.entry.server === '') {
    throw new InputError(`kubeconfig: context "${name}" names no cluster with a server`, where);
  }
  const c = cluster.entry;
  if (c['proxy-url']) throw new InputError(`kubeconfig: cluster "${ctx.cluster}" uses proxy-url, which meshguard does not support`, where);
  // A context may name no user (kubectl proxy on http://127.0.0.1:8001): anonymous requests.
  const user = ctx.user !== undefined && ctx.user !== '' ? merged.users.get(ctx.user) : undefined;
  const u = user?.entry ?? {};
  const userDir = user?.dir ?? cluster.dir;
  const source = `${files.join(path.delimiter)} (context ${name})`;
  const s: Settings = {
    server: c.server!.replace(/\/+$/, ''),
    source,
    rejectUnauthorized: c['insecure-skip-tls-verify'] !== true,
  };
  const ca = fileOrData(c as Record<string, unknown>, 'certificate-authority', 'certificate-authority-data', cluster.dir, where.file);
  // As kubectl: a CA and insecure-skip-tls-verify together are a mistake, not a silent insecure connection.
  if (ca && !s.rejectUnauthorized) throw new InputError(`kubeconfig: cluster "${ctx.cluster}" sets both a certificate authority and insecure-skip-tls-verify`, where);
  if (ca) s.ca = ca;
  if (c['tls-server-name']) s.servername = c['tls-server-name'];
  if (typeof u.as === 'string' && u.as !== '') s.impersonate = { user: u.as, groups: Array.isArray(u['as-groups']) ? u['as-groups'].map(String) : [] };
  if (u.exec !== undefined || u['auth-provider'] !== undefined) {
    // client-node gets only the resolved context (as one document with absolute paths), so that the
    // plugin it runs is this context's and never another file's.
    s.plugin = pluginKubeconfig(name, ctx.cluster!, c, cluster.dir, ctx.user!, u, userDir);
    return s;
  }
  const cert = fileOrData(u as Record<string, unknown>, 'client-certificate', 'client-certificate-data', userDir, where.file);
  const key = fileOrData(u as Record<string, unknown>, 'client-key', 'client-key-data', userDir, where.file);
  if ((cert === undefined) !== (key === undefined)) throw new InputError(`kubeconfig: user "${ctx.user}" has a client certificate without a key or a key without a certificate`, where);
  if (cert && key) {
    s.cert = cert;
    s.key = key;
  }
  const hasToken = (typeof u.token === 'string' && u.token !== '') || (typeof u.tokenFile === 'string' && u.tokenFile !== '');
  if (hasToken && typeof u.username === 'string' && u.username !== '') {
    throw new InputError(`kubeconfig: user "${ctx.user}" has both a token and a username/password; give one`, where);
  }
  // As client-go: a tokenFile wins over an inline token (the file is the one kept current).
  if (typeof u.tokenFile === 'string' && u.tokenFile !== '') s.tokenFile = path.resolve(userDir, u.tokenFile);
  else if (typeof u.token === 'string' && u.token !== '') s.token = u.token;
  if (typeof u.username === 'string' && u.username !== '') s.basic = Buffer.from(`${u.username}:${u.password ?? ''}`).toString('base64');
  return s;
}

function withoutKeys(o: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out = { ...o };
  for (const k of keys) delete out[k];
  return out;
}

/** One kubeconfig document holding only the resolved context, its cluster and user, paths made absolute. */
function pluginKubeconfig(context: string, clusterName: string, c: ClusterEntry, clusterDir: string, userName: string, u: UserEntry, userDir: string): string {
  const abs = (entry: Record<string, unknown>, keys: string[], dir: string): Record<string, unknown> => {
    const out = { ...entry };
    for (const k of keys) if (typeof out[k] === 'string' && out[k] !== '') out[k] = path.resolve(dir, out[k] as string);
    return out;
  };
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': context,
    clusters: [{ name: clusterName, cluster: abs(c as Record<string, unknown>, ['certificate-authority'], clusterDir) }],
    // Impersonation is sent by meshguard itself (headers), not twice.
    users: [{ name: userName, user: abs(withoutKeys(u as Record<string, unknown>, ['as', 'as-groups']), ['client-certificate', 'client-key', 'tokenFile'], userDir) }],
    contexts: [{ name: context, context: { cluster: clusterName, user: userName } }],
  });
}

function inCluster(env: NodeJS.ProcessEnv, saDir: string): Settings | undefined {
  const host = env['KUBERNETES_SERVICE_HOST'];
  const port = env['KUBERNETES_SERVICE_PORT'];
  const tokenFile = path.join(saDir, 'token');
  if (!host || !port || !existsSync(tokenFile)) return undefined;
  const h = host.includes(':') ? `[${host}]` : host;
  const caFile = path.join(saDir, 'ca.crt');
  return {
    server: `https://${h}:${port}`,
    source: 'in-cluster service account',
    rejectUnauthorized: true,
    ...(existsSync(caFile) ? { ca: readFileSync(caFile) } : {}),
    tokenFile,
  };
}

export interface LoadKubeApiOptions {
  /** Environment to read $KUBECONFIG, $HOME and the in-cluster variables from (tests). */
  readonly env?: NodeJS.ProcessEnv;
  /** Service account directory (tests). */
  readonly serviceAccountDir?: string;
  /** How long a token read from a file is used before the file is read again (default 60 s). */
  readonly tokenFileTtlMs?: number;
  /** Use this kubeconfig context instead of current-context (kubectl --context). */
  readonly context?: string;
}

/**
 * The apiserver to use: the given kubeconfig, else the kubectl chain ($KUBECONFIG, which may list several
 * files, ~/.kube/config), else the in-cluster service account. Bad or missing settings are InputErrors.
 */
export function loadKubeApi(kubeconfigPath?: string, opts: LoadKubeApiOptions = {}): KubeApi {
  const env = opts.env ?? process.env;
  let settings: Settings | undefined;
  if (kubeconfigPath) {
    settings = fromKubeconfig([kubeconfigPath], opts.context);
  } else {
    const fromEnv = (env['KUBECONFIG'] ?? '').split(path.delimiter).filter((f) => f !== '');
    const existing = fromEnv.filter((f) => existsSync(f));
    const home = env['HOME'] ?? os.homedir();
    const dflt = path.join(home, '.kube', 'config');
    if (existing.length > 0) settings = fromKubeconfig(existing, opts.context);
    else if (fromEnv.length === 0 && existsSync(dflt)) settings = fromKubeconfig([dflt], opts.context);
    else if (opts.context !== undefined) {
      // The service account has no contexts: a context asked for must come from a kubeconfig.
      throw new InputError(`cannot use context "${opts.context}": no --kubeconfig, no $KUBECONFIG file and no ~/.kube/config to find it in`);
    } else settings = inCluster(env, opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
    if (!settings) {
      throw new InputError(fromEnv.length > 0
        ? `cannot load kubeconfig: none of $KUBECONFIG's files exist (${fromEnv.join(path.delimiter)})`
        : 'cannot load kubeconfig: no --kubeconfig, no $KUBECONFIG, no ~/.kube/config, and not running in a cluster');
    }
  }
  let url: URL;
  try {
    url = new URL(settings.server);
  } catch {
    throw new InputError(`kubeconfig: server "${settings.server}" is not a URL`, { file: settings.source });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new InputError(`kubeconfig: server "${settings.server}" is neither https nor http`, { file: settings.source });
  return new NodeKubeApi(settings, url, opts.tokenFileTtlMs ?? TOKEN_FILE_TTL_MS);
}

// ---------------------------------------------------------------------------------------------------
// requests

type K8s = typeof import('@kubernetes/client-node');

/** Longer than any watch (their timeoutSeconds is at most 10 minutes). */
const OLD_AGENT_DRAIN_MS = 15 * 60_000;

function sameBytes(a: Buffer | string | undefined, b: Buffer | string | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  return Buffer.from(a).equals(Buffer.from(b));
}

/** Credentials from a kubeconfig plugin (exec, auth-provider), computed by client-node per request. */
class PluginCredentials {
  #kc?: InstanceType<K8s['KubeConfig']>;
  readonly #kubeconfig: string;
  constructor(kubeconfig: string) {
    this.#kubeconfig = kubeconfig;
  }
  async apply(): Promise<{ headers: Record<string, string>; cert?: Buffer | string; key?: Buffer | string }> {
    if (!this.#kc) {
      const k8s = createRequire(import.meta.url)('@kubernetes/client-node') as K8s;
      const kc = new k8s.KubeConfig();
      kc.loadFromString(this.#kubeconfig);
      this.#kc = kc;
    }
    const opts: https.RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string') headers[k] = v;
    return {
      headers,
      ...(opts.cert ? { cert: opts.cert as Buffer | string } : {}),
      ...(opts.key ? { key: opts.key as Buffer | string } : {}),
    };
  }
}

class NodeKubeApi implements KubeApi {
  readonly server: string;
  readonly source: string;
  readonly #s: Settings;
  readonly #url: URL;
  readonly #plugin?: PluginCredentials;
  #agent?: http.Agent;
  #agentCert?: Buffer | string;
  #agentKey?: Buffer | string;
  #token?: { value: string; readAt: number };
  readonly #tokenTtlMs: number;

  constructor(s: Settings, url: URL, tokenTtlMs: number) {
    this.#s = s;
    this.#tokenTtlMs = tokenTtlMs;
    this.#url = url;
    this.server = s.server;
    this.source = s.source;
    if (s.plugin) this.#plugin = new PluginCredentials(s.plugin);
  }

  #bearer(): string | undefined {
    if (this.#s.token) return this.#s.token;
    const file = this.#s.tokenFile;
    if (!file) return undefined;
    const now = Date.now();
    if (!this.#token || now - this.#token.readAt >= this.#tokenTtlMs) {
      try {
        this.#token = { value: readFileSync(file, 'utf8').trim(), readAt: now };
      } catch (e) {
        // Keep the last token if the file is briefly missing during a rotation.
        if (!this.#token) throw new Error(`cannot read token file ${file}: ${(e as Error).message}`);
      }
    }
    return this.#token!.value;
  }

  #agentFor(cert?: Buffer | string, key?: Buffer | string): http.Agent {
    if (this.#agent && sameBytes(this.#agentCert, cert) && sameBytes(this.#agentKey, key)) return this.#agent;
    // A new client certificate (a plugin rotated it): new connections use it. The old agent is not
    // destroyed, which would cut the watches still open on it; they move over as they end.
    const old = this.#agent;
    if (old) setTimeout(() => old.destroy(), OLD_AGENT_DRAIN_MS).unref();
    const common = { keepAlive: true };
    this.#agent = this.#url.protocol === 'http:'
      ? new http.Agent(common)
      : new https.Agent({
        ...common,
        ...(this.#s.ca ? { ca: this.#s.ca } : {}),
        ...(cert && key ? { cert, key } : {}),
        rejectUnauthorized: this.#s.rejectUnauthorized,
        ...(this.#s.servername ? { servername: this.#s.servername } : {}),
      });
    this.#agentCert = cert;
    this.#agentKey = key;
    return this.#agent;
  }

  async #headers(): Promise<{ headers: Record<string, string>; cert: Buffer | string | undefined; key: Buffer | string | undefined }> {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': 'meshguard' };
    let cert: Buffer | string | undefined = this.#s.cert;
    let key: Buffer | string | undefined = this.#s.key;
    if (this.#plugin) {
      const p = await this.#plugin.apply();
      Object.assign(headers, p.headers);
      if (p.cert && p.key) {
        cert = p.cert;
        key = p.key;
      }
    } else {
      const bearer = this.#bearer();
      if (bearer) headers['authorization'] = `Bearer ${bearer}`;
      else if (this.#s.basic) headers['authorization'] = `Basic ${this.#s.basic}`;
    }
    if (this.#s.impersonate) {
      headers['impersonate-user'] = this.#s.impersonate.user;
      if (this.#s.impersonate.groups.length > 0) headers['impersonate-group'] = this.#s.impersonate.groups.join(',');
    }
    return { headers, cert, key };
  }

  async #request(method: string, pathAndQuery: string, extraHeaders: Record<string, string>, body: string | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
    const { headers, cert, key } = await this.#headers();
    Object.assign(headers, extraHeaders);
    const agent = this.#agentFor(cert, key);
    const mod = this.#url.protocol === 'http:' ? http : https;
    const base = this.#url.pathname.replace(/\/+$/, '');
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = mod.request(
        {
          protocol: this.#url.protocol,
          hostname: this.#url.hostname.replace(/^\[|\]$/g, ''),
          port: this.#url.port || (this.#url.protocol === 'http:' ? 80 : 443),
          path: base + pathAndQuery,
          method,
          headers,
          agent,
          ...(signal ? { signal } : {}),
        },
        resolve,
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  get(pathAndQuery: string, opts: KubeGetOptions = {}): Promise<IncomingMessage> {
    return this.#request('GET', pathAndQuery, opts.accept !== undefined ? { accept: opts.accept } : {}, undefined, opts.signal);
  }

  async send(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', pathAndQuery: string, body?: unknown, contentType = 'application/json'): Promise<KubeResponse> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = text === undefined ? {} : { 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)) };
    const res = await this.#request(method, pathAndQuery, headers, text);
    return { status: res.statusCode ?? 0, body: await readBody(res) };
  }

  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }
}
