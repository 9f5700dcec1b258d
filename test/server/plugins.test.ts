// The webhook's plugins close what they hold when the webhook's Fastify instance closes, however it
// is closed (a shutdown, or app.close() as after a failed listen).

import t from 'tap';

import { FakeClock } from '../helpers/fake-clock.ts';
import { turn } from '../helpers/until.ts';
import { fakeSource, send, startServer } from './harness.ts';

t.test('closing the webhook instance closes the monitoring listener and stops the warm-up check', async (t) => {
  const clock = new FakeClock();
  let warmUps = 0;
  const source = fakeSource(false);
  const s = await startServer(t, { source, timers: clock, warmUp: () => void warmUps++ });
  t.equal((await send(s.metricsUrl, '/healthz', { ca: s.ca, method: 'GET', contentType: null })).status, 200);
  await s.server.app.close();
  await t.rejects(send(s.metricsUrl, '/healthz', { ca: s.ca, method: 'GET', contentType: null, timeoutMs: 2_000 }), { code: 'ECONNREFUSED' }, 'the monitoring port is closed');
  // The state syncs after the close: the warm-up check no longer runs.
  source.setSynced(true);
  clock.advance(1_000);
  await turn();
  t.equal(warmUps, 0, 'no warm-up after the close');
});
