import t from 'tap';
import { toChange } from '../../src/admission/review.ts';
import type { AdmissionReview } from '../../src/admission/schema.ts';
import { defaultConfig } from '../../src/config/config.ts';
import { allRules } from '../../src/rules/registry.ts';
import { stateFromObjects } from '../../src/state/snapshot.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { warmUp, warmUpChanges } from '../../src/verdict/warmup.ts';
import { generateCluster } from '../../bench/cluster-gen.ts';
import { requestMix } from '../../bench/requests.ts';

const PODS = 300;

t.test('warm-up requests cover every (kind, operation) the rules trigger on, from objects of the state', async (t) => {
  const rules = allRules();
  const state = stateFromObjects(generateCluster(PODS));
  const changes = warmUpChanges(rules, state);
  for (const rule of rules) {
    for (const trig of rule.triggers) {
      for (const kind of trig.kinds) {
        for (const op of trig.operations) {
          if (op === 'CONNECT' || state.list(kind).length === 0) continue;
          t.ok(changes.some((c) => c.kind === kind && c.operation === op), `${rule.id}: ${kind} ${op}`);
        }
      }
    }
  }
  for (const c of changes) {
    t.equal(c.dryRun, true);
    if (c.operation === 'DELETE') t.equal(c.object, undefined);
    else t.ok(state.get(c.kind!, c.namespace || undefined, c.name), 'an object of the state');
  }
});

t.test('decisions after a warm-up equal those of a cold process', async (t) => {
  const rules = allRules();
  const mix = requestMix(PODS, 120);
  const cold = createDecide(rules, defaultConfig());
  const coldState = stateFromObjects(generateCluster(PODS));
  const expected = mix.map((r) => cold(toChange(r.review as unknown as AdmissionReview), coldState));

  const warm = createDecide(rules, defaultConfig());
  const warmState = stateFromObjects(generateCluster(PODS));
  t.ok(warmUp(warm, rules, warmState, 50) > 0);
  const got = mix.map((r) => warm(toChange(r.review as unknown as AdmissionReview), warmState));
  t.same(got, expected);
  t.ok(expected.some((d) => !d.allowed) && expected.some((d) => d.findings.length > 0), 'the mix exercises findings and denials');
});

t.test('a warm-up of 0 ms still stops, on an empty state too', async (t) => {
  const rules = allRules();
  t.equal(warmUp(createDecide(rules, defaultConfig()), rules, stateFromObjects([]), 0), 0);
});
