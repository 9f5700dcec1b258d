// Every meshguard metric is listed in docs/cli.md, where operators look for what to alert on.

import { readFileSync } from 'node:fs';
import t from 'tap';

import { createMetrics } from '../../src/server/metrics.ts';

t.test('docs/cli.md lists every meshguard_* metric the server exports', async (t) => {
  const doc = readFileSync(new URL('../../docs/cli.md', import.meta.url), 'utf8');
  const names = (await createMetrics({ processMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('meshguard_'));
  t.ok(names.length >= 9, `metrics found (${names.length})`);
  for (const name of names) t.ok(doc.includes(`\`${name}`), `${name} is documented`);
});
