// touchedPods for the L7 rules: a policy change touches pods only through proxied L7 rules (HTTP,
// Kafka, l7proto). DNS rules go to the DNS proxy and are not what the L7 rules judge, so a change to
// a policy whose only rules are DNS rules touches nothing for them.

import t from 'tap';

import { mutationOf } from '../../src/core/change.ts';
import { touchedPods } from '../../src/impact/index.ts';
import { overlay } from '../../src/state/overlay.ts';
import { cnp, memoryState, ns, pod } from '../fixtures/cluster.ts';
import { makeChange } from '../rules/rule-harness.ts';

const state = memoryState([ns('red'), pod('red', 'app-1', { app: 'app' })]);

function touchedForL7(rules: Record<string, unknown>): number {
  const policy = cnp('red', 'p', {
    endpointSelector: { matchLabels: { app: 'app' } },
    // DNS rules on UDP 53; proxied L7 rules need TCP (the agent refuses them on another protocol).
    egress: [{ toEndpoints: [{}], toPorts: [{ ports: [rules.dns ? { port: '53', protocol: 'UDP' } : { port: '8080', protocol: 'TCP' }], rules }] }],
  });
  const change = makeChange('CREATE', policy);
  return touchedPods(change, state, overlay(state, mutationOf(change)), { direction: 'l7' }).pods.length;
}

t.test('DNS rules touch nothing for the L7 rules; HTTP rules touch the selected pods', async (t) => {
  t.equal(touchedForL7({ dns: [{ matchPattern: '*' }] }), 0, 'rules.dns only');
  t.equal(touchedForL7({ http: [{ method: 'GET' }] }), 1, 'rules.http');
  t.equal(touchedForL7({ kafka: [{ topic: 't' }] }), 1, 'rules.kafka');
});
