// The benchmark's ceiling: a Fastify HTTPS server on the same TLS setup as meshguard that parses the
// same AdmissionReview bodies and answers `allowed: true`. Whatever meshguard costs above this is
// meshguard's own work.
// Usage: node bench/baseline-server.ts --tls-cert F --tls-key F --port P   (prints "ready <url>" when listening)

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Fastify from 'fastify';

const { values } = parseArgs({ options: { 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, port: { type: 'string', default: '0' } } });

const app = Fastify({
  logger: false,
  bodyLimit: 7 * 1024 * 1024,
  https: { cert: readFileSync(values['tls-cert']!), key: readFileSync(values['tls-key']!) },
  keepAliveTimeout: 60_000,
});

app.post('/validate', async (req) => {
  const body = req.body as { request?: { uid?: unknown } } | undefined;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: String(body?.request?.uid ?? ''), allowed: true },
  };
});
app.get('/readyz', async () => ({ ok: true }));

const url = await app.listen({ host: '127.0.0.1', port: Number(values.port) });
process.stdout.write(`ready ${url}\n`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
