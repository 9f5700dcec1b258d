import t from 'tap';
import { sendFigures } from '../../bench/worst-case.ts';

t.test('the served figures keep p99 over every send and show the first send apart', async (t) => {
  // The first send found cold tables: it is the p99 of 20 sends, and the other 19 say how fast the rest was.
  const samples = [310, ...Array.from({ length: 19 }, (_, i) => 40 + i)];
  const f = sendFigures(samples);
  t.equal(f.p99Ms, 310, 'p99 over all sends (what the target reads)');
  t.equal(f.maxMs, 310);
  t.equal(f.firstMs, 310);
  t.equal(f.restP99Ms, 58, 'p99 of the other 19');
  t.equal(f.restP50Ms, 49);
  t.equal(f.p50Ms, 49);
});

t.test('a slow send that is not the first is not blamed on it', async (t) => {
  const f = sendFigures([40, 41, 300, 42]);
  t.equal(f.firstMs, 40);
  t.equal(f.restP99Ms, 300);
  t.equal(f.p99Ms, 300);
});

t.test('one send: no others', async (t) => {
  const f = sendFigures([12]);
  t.equal(f.firstMs, 12);
  t.equal(f.restP50Ms, undefined);
  t.equal(f.restP99Ms, undefined);
});
