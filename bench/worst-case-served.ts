// The worst-case requests (bench/worst-case.ts) through a running `meshguard serve`: each review sent
// `n` times, one at a time over one keep-alive HTTPS connection, each time with a new sequence label
// (bench/requests.ts SEQ_LABEL) so that the verdict cache never answers it: a worst case is a miss.

import https from 'node:https';

import { SEQ_PLACEHOLDER } from './requests.ts';
import { sendFigures, type ServedTiming } from './worst-case.ts';

function post(agent: https.Agent, port: number, ca: Buffer, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/validate', method: 'POST', ca, agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 60_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** Sends every review (a JSON text carrying SEQ_PLACEHOLDER) `n` times; `seqStart` numbers the sends. */
export async function timeServed(port: number, ca: Buffer, reviews: readonly { label: string; body: string }[], n: number, seqStart: number): Promise<ServedTiming[]> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const out: ServedTiming[] = [];
  let seq = seqStart;
  try {
    for (const { label, body } of reviews) {
      if (!body.includes(SEQ_PLACEHOLDER)) throw new Error(`${label}: the review carries no sequence placeholder`);
      const samples: number[] = [];
      let last = { status: 0, text: '' };
      for (let i = 0; i < n; i++) {
        const b = body.split(SEQ_PLACEHOLDER).join(`seq-${String(seq++ % 1e8).padStart(8, '0')}`);
        const t0 = performance.now();
        last = await post(agent, port, ca, b);
        samples.push(performance.now() - t0);
      }
      let verdict: ServedTiming['verdict'] = { allowed: false, warnings: 0, httpStatus: last.status };
      try {
        const r = (JSON.parse(last.text) as { response?: { allowed?: boolean; warnings?: string[]; status?: { message?: string } } }).response;
        verdict = { allowed: r?.allowed === true, warnings: r?.warnings?.length ?? 0, httpStatus: last.status, ...(r?.allowed ? {} : { message: (r?.status?.message ?? '').slice(0, 160) }) };
      } catch {
        // Not an AdmissionReview: the status says what went wrong.
      }
      out.push({ label, samples, ...sendFigures(samples), verdict });
    }
  } finally {
    agent.destroy();
  }
  return out;
}
