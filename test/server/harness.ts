// Shared pieces of the server tests: a StateSource over MemoryState with a settable sync flag, an
// AdmissionReview builder, a started server on a random loopback port, and an HTTPS client that
// reports which certificate the server presented.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';

import { pino, type Logger } from 'pino';

import type { Change } from '../../src/core/change.ts';
import type { ActedFinding } from '../../src/core/finding.ts';
import type { Decide, Decision } from '../../src/core/decision.ts';
import { createServer, type MeshguardServer, type ServerOptions } from '../../src/server/server.ts';
import type { KindName } from '../../src/core/kinds.ts';
import { MemoryState } from '../../src/state/store.ts';
import type { StateSource, StateStats } from '../../src/core/objects.ts';
import { makeCerts, type CertSet } from '../helpers/certs.ts';

export interface FakeSource extends StateSource {
  readonly state: MemoryState;
  setSynced(v: boolean): void;
}

export function fakeSource(synced = true): FakeSource {
  const state = new MemoryState('test');
  let isSynced = synced;
  return {
    state,
    async start() {},
    async stop() {},
    synced: () => isSynced,
    setSynced(v: boolean) {
      isSynced = v;
    },
    stats(): StateStats {
      const objects: Partial<Record<KindName, number>> = { Pod: state.count('Pod'), Namespace: state.count('Namespace') };
      return { objects, synced: isSynced, secondsSinceLastEvent: 1.5, watchEvents: { Pod: { changed: 2, unchanged: 5 } } };
    },
  };
}

export const allow: Decision = { allowed: true, findings: [], skipped: [] };

/** A decide that records every change it saw and answers `answer(change)`. */
export function recordingDecide(answer: (c: Change) => Decision = () => allow): Decide & { calls: Change[] } {
  const calls: Change[] = [];
  const fn = ((change: Change) => {
    calls.push(change);
    return answer(change);
  }) as unknown as Decide & { calls: Change[] };
  fn.calls = calls;
  return fn;
}

export function finding(rule: string, action: ActedFinding['action'], message: string, extra: Partial<ActedFinding> = {}): ActedFinding {
  return { rule, code: `${rule}/test`, params: {}, action, message, ...extra };
}

let uidCounter = 0;
export function review(over: Record<string, unknown> = {}): Record<string, unknown> {
  const uid = `uid-${++uidCounter}-${Math.random().toString(36).slice(2, 8)}`;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: 'cilium.io', version: 'v2', kind: 'CiliumNetworkPolicy' },
      resource: { group: 'cilium.io', version: 'v2', resource: 'ciliumnetworkpolicies' },
      namespace: 'blue',
      name: 'deny-all',
      operation: 'CREATE',
      userInfo: { username: 'alice', groups: ['system:authenticated'] },
      object: {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'deny-all', namespace: 'blue' },
        spec: { endpointSelector: {}, egress: [{}] },
      },
      oldObject: null,
      dryRun: false,
      ...over,
    },
  };
}

export interface MemoryLog {
  readonly logger: Logger;
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first line, already logged or still to come, for which `match` is true. */
  waitFor(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

/** Silent logger that keeps every line for assertions. */
export function memoryLogger(): MemoryLog {
  const lines: Record<string, unknown>[] = [];
  const waiting = new Set<{ match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }>();
  const logger = pino(
    { level: 'debug' },
    {
      write(s: string) {
        const line = JSON.parse(s) as Record<string, unknown>;
        lines.push(line);
        for (const w of waiting) {
          if (!w.match(line)) continue;
          waiting.delete(w);
          w.resolve(line);
        }
      },
    },
  );
  const waitFor = (match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const seen = lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => waiting.add({ match, resolve }));
  };
  return { logger, lines, waitFor };
}

export interface Started {
  readonly server: MeshguardServer;
  readonly url: string;
  /** The plain-HTTP monitoring listener (GET /metrics, /healthz, /readyz). */
  readonly metricsUrl: string;
  readonly certs: CertSet;
  readonly dir: string;
  readonly ca: Buffer;
  readonly lines: Record<string, unknown>[];
  readonly source: FakeSource;
  close(): Promise<void>;
}

export async function startServer(
  t: { teardown(fn: () => unknown): void },
  opts: Partial<ServerOptions> & { decide?: Decide } = {},
): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'meshguard-server-'));
  const certs = makeCerts(dir);
  const { logger, lines } = memoryLogger();
  const source = (opts.source as FakeSource | undefined) ?? fakeSource();
  const server = await createServer({
    decide: recordingDecide(),
    tlsCertFile: certs.cert,
    tlsKeyFile: certs.key,
    host: '127.0.0.1',
    port: 0,
    drainSeconds: 0,
    tlsPollSeconds: 0,
    metricsPort: 0,
    logger,
    ...opts,
    source,
  });
  const url = await server.listen();
  const metricsUrl = server.metricsUrl ?? '';
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await server.shutdown();
    rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(close);
  return { server, url, metricsUrl, certs, dir, ca: readFileSync(certs.caCert), lines, source, close };
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** Parsed body when it is JSON. */
  readonly json: any;
  /** Serial of the certificate the server presented on this connection. */
  readonly serial: string;
  /** Whether this request reused a kept-alive connection. */
  readonly reused: boolean;
}

export interface SendOptions {
  readonly method?: string;
  readonly body?: string | Buffer;
  readonly contentType?: string | null;
  readonly agent?: Agent;
  readonly ca: Buffer;
  readonly timeoutMs?: number;
  readonly headers?: Record<string, string>;
  /** A client certificate and key (PEM) to present. */
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** One HTTPS (or, for an http: URL, plain HTTP) request; rejects on a network error or when no answer comes within timeoutMs. */
export function send(url: string, path: string, o: SendOptions): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.contentType !== null) headers['content-type'] = o.contentType ?? 'application/json';
    const target = new URL(path, url);
    const common = { method: o.method ?? 'POST', headers, timeout: o.timeoutMs ?? 10_000 };
    const req = target.protocol === 'http:'
      ? httpRequest(target, { ...common, agent: false })
      : request(target, { ...common, ca: o.ca, agent: o.agent ?? false, ...(o.cert ? { cert: o.cert } : {}), ...(o.key ? { key: o.key } : {}) });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const socket = res.socket as TLSSocket;
      const serial = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate().serialNumber?.toUpperCase() ?? '' : '';
      const reused = (req as unknown as { reusedSocket: boolean }).reusedSocket;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, serial, reused });
      });
    });
    req.end(o.body);
  });
}

export function postReview(url: string, body: unknown, o: Omit<SendOptions, 'body'>): Promise<Answer> {
  return send(url, '/validate', { ...o, body: JSON.stringify(body) });
}

/** GET the monitoring listener's /metrics page. */
export function scrape(s: Pick<Started, 'metricsUrl'>): Promise<Answer> {
  return send(s.metricsUrl, '/metrics', { ca: Buffer.alloc(0), method: 'GET', contentType: null });
}
