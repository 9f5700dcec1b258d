// A pass-through HTTPS proxy in front of the e2e kube-apiserver that adds pod watch events of its own
// (issue 21's live path at 500 pod events/s). On this 2-core machine the apiserver and etcd take 100-180
// pod writes a second and, while they do, take the cores meshguard needs; the churn target asks for 500.
// meshguard's lists, watches, bookmarks and resumes still come from the real apiserver through this
// proxy; only the pod label changes are made here: each is a MODIFIED event written into meshguard's
// cluster-wide pod watch (between two of the apiserver's lines, never inside one), carrying a pod as the
// apiserver serves it with one label changed and the resourceVersion of the apiserver's last line, so a
// resumed watch starts where the apiserver's events left off. The apiserver never learns of these
// changes: meshguard's state and the apiserver's differ in that label from then on, which no rule reads.
//
// The lag measured through it starts when an event is written to meshguard's socket, so it counts
// meshguard's reading, parsing and applying, not the apiserver's commit and fan-out.

import { createServer, request as httpsRequest, Agent, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';

import type { Api } from './live.ts';

export interface WatchInjector {
  /** https://127.0.0.1:port, to put in meshguard's kubeconfig. */
  readonly url: string;
  /**
   * Writes `perSecond` pod label changes a second into the open pod watch until the returned function
   * is called; each change's time is the moment it was written (queued changes, while no pod watch is
   * open, are written and timed when one opens; those still queued when it is called are `failed`).
   * Same answer shape as live-churn.ts's writers. One churn at a time. `label` (default
   * bench.meshguard.io/churn) is the label each change sets to a value never written before.
   */
  churn(perSecond: number, label?: string): () => Promise<{ ackedAt: number[]; failed: number; sent: number }>;
  /** Pod watch streams opened through the proxy so far, injected lines written, and lines waiting. */
  stats(): { podWatches: number; injected: number; pending: number };
  close(): Promise<void>;
}

// Each pod is kept as its event's JSON text, cut where the resourceVersion and the labels go, with its
// labels beside it: building an event is then one small object and a few string joins, and the proxy's
// heap holds 50k strings and label maps instead of 50k object trees. On this 2-core machine the proxy
// shares the cores with meshguard, and a major collection of those trees (95-296 ms of V8 worker time,
// measured with bench/thread-sampler.ts) was itself a stall in the churn phases it ran in.
const MARK_RV = '\u0001rv\u0001';
const MARK_LABELS = '\u0001labels\u0001';

/** A pod's event text in three parts (before the resourceVersion, before the labels, the rest) and its labels. */
interface PodTemplate {
  readonly parts: readonly [string, string, string];
  readonly labels: Readonly<Record<string, string>>;
}

/** The event text of `pod` (as the apiserver serves it, less managedFields) with the resourceVersion and the labels left open. */
export function podTemplate(pod: Record<string, unknown>): PodTemplate {
  const { metadata, ...rest } = pod as { metadata: Record<string, unknown> & { labels?: Record<string, string> } };
  const { managedFields: _drop, resourceVersion: _rv, labels, ...meta } = metadata;
  const text = JSON.stringify({ type: 'MODIFIED', object: { ...rest, metadata: { ...meta, resourceVersion: MARK_RV, labels: MARK_LABELS } } });
  // JSON.stringify writes each mark as a string of its own: "\u0001rv\u0001".
  const cut = (t: string, mark: string): [string, string] => {
    const quoted = JSON.stringify(mark);
    const i = t.indexOf(quoted);
    if (i < 0 || t.indexOf(quoted, i + 1) >= 0) throw new Error('watch-injector: a pod template mark is missing or repeated');
    return [t.slice(0, i), t.slice(i + quoted.length)];
  };
  const [a, r1] = cut(text, MARK_RV);
  const [b, c] = cut(r1, MARK_LABELS);
  return { parts: [a, b, c], labels: { ...labels } };
}

/** The event line: the pod with `resourceVersion`, and `label` set to `value` (added, or changed in place), and a newline. */
export function podEventLine(t: PodTemplate, resourceVersion: string, label: string, value: string): string {
  return `${t.parts[0]}${JSON.stringify(resourceVersion)}${t.parts[1]}${JSON.stringify({ ...t.labels, [label]: value })}${t.parts[2]}\n`;
}

const isPodWatch = (url: string): boolean => {
  const q = url.indexOf('?');
  const pathname = q < 0 ? url : url.slice(0, q);
  if (pathname !== '/api/v1/pods') return false;
  const w = new URLSearchParams(q < 0 ? '' : url.slice(q + 1)).get('watch');
  return w === 'true' || w === '1';
};

/**
 * Starts the proxy. `upstream`: the apiserver's URL and CA; `tls`: the proxy's serving certificate;
 * `api`: the bench's apiserver client, used once to read the pods the events are made from.
 */
export async function startWatchInjector(
  upstream: { url: string; ca: Buffer },
  tls: { cert: Buffer; key: Buffer },
  api: Api,
): Promise<WatchInjector> {
  // The pods as the apiserver serves them (JSON), without managedFields: the events' templates.
  const listed = await api.request('GET', '/api/v1/pods');
  if (listed.status !== 200) throw new Error(`listing pods for the injector: ${listed.status}`);
  const templates: PodTemplate[] = (JSON.parse(listed.body) as { items: Record<string, unknown>[] }).items.map(podTemplate);
  if (templates.length === 0) throw new Error('the apiserver holds no pods to change');

  const up = new URL(upstream.url);
  const agent = new Agent({ keepAlive: true, ca: upstream.ca });
  /** Open pod watch responses, oldest first; events go to the newest. */
  const podWatches: { res: ServerResponse; rv: string; midLine: boolean }[] = [];
  let podWatchesOpened = 0;
  let injected = 0;
  /** Changes made and not yet written: the pod's template, the label and its new value. */
  const pending: { template: PodTemplate; label: string; value: string }[] = [];
  let onWritten: (() => void) | undefined;

  const flush = (): void => {
    const w = podWatches.at(-1);
    if (!w || w.midLine) return;
    for (const p of pending) {
      w.res.write(podEventLine(p.template, w.rv, p.label, p.value));
      injected++;
      onWritten?.();
    }
    pending.length = 0;
  };

  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const podWatch = req.method === 'GET' && isPodWatch(url);
    const headers = { ...req.headers, host: up.host };
    const out = httpsRequest({ host: up.hostname, port: up.port, path: url, method: req.method, headers, agent }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      // A watch's headers come before any event: passed on at once, as the apiserver sends them (held
      // until the first event, a quiet kind's watch looks dead to meshguard's watchdog, which relists it).
      res.flushHeaders();
      if (!podWatch || (upRes.statusCode ?? 0) !== 200) {
        // An upstream that fails mid-answer cuts the answer (pipe alone would leave it open).
        pipeline(upRes, res, () => undefined);
        return;
      }
      const entry = { res, rv: new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('resourceVersion') ?? '', midLine: false };
      podWatches.push(entry);
      podWatchesOpened++;
      const drop = (): void => {
        const i = podWatches.indexOf(entry);
        if (i >= 0) podWatches.splice(i, 1);
      };
      let tail = '';
      upRes.setEncoding('utf8');
      upRes.on('data', (chunk: string) => {
        res.write(chunk);
        // Track line boundaries and the last resourceVersion the apiserver sent on this stream.
        const text = tail + chunk;
        const nl = text.lastIndexOf('\n');
        if (nl >= 0) {
          for (const line of text.slice(0, nl).split('\n')) {
            if (line.length === 0) continue;
            try {
              const ev = JSON.parse(line) as { type?: unknown; object?: { metadata?: { resourceVersion?: unknown } } };
              // An ERROR event (a 410 as an event) ends the watch for meshguard: nothing more goes into it.
              if (ev.type === 'ERROR') drop();
              const rv = ev.object?.metadata?.resourceVersion;
              if (typeof rv === 'string') entry.rv = rv;
            } catch {
              // Not JSON: pass it on and let meshguard say so.
            }
          }
          tail = text.slice(nl + 1);
        } else tail = text;
        entry.midLine = tail.length > 0;
        if (!entry.midLine) flush();
      });
      upRes.on('end', () => {
        drop();
        res.end();
      });
      upRes.on('error', () => {
        drop();
        res.destroy();
      });
      res.on('close', () => {
        drop();
        upRes.destroy();
      });
      flush();
    });
    out.on('error', (e) => {
      // Once the headers are out (a watch under way) a text line would corrupt the stream: cut it.
      if (res.headersSent) res.destroy();
      else {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`watch-injector: ${e.message}`);
      }
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('watch-injector: no port');

  return {
    url: `https://127.0.0.1:${address.port}`,
    churn(perSecond, label = 'bench.meshguard.io/churn') {
      const run = Date.now().toString(36);
      const ackedAt: number[] = [];
      let n = 0;
      let stopped = false;
      onWritten = () => ackedAt.push(performance.now());
      const t0 = performance.now();
      // One timer a millisecond at most; each tick writes every change that is due by then.
      const tick = (): void => {
        if (stopped) return;
        const due = Math.floor(((performance.now() - t0) * perSecond) / 1000);
        while (n < due) {
          const template = templates[(n * 7919) % templates.length]!;
          n++;
          pending.push({ template, label, value: `i${run}-${n}` });
        }
        flush();
        setTimeout(tick, 1);
      };
      tick();
      return async () => {
        stopped = true;
        flush();
        // Changes not written by now (no pod watch open, or one mid-line) are failed, not written later
        // into another run's count.
        const failed = pending.length;
        pending.length = 0;
        onWritten = undefined;
        return { ackedAt, failed, sent: n };
      };
    },
    stats: () => ({ podWatches: podWatchesOpened, injected, pending: pending.length }),
    async close() {
      for (const w of podWatches.splice(0)) w.res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
