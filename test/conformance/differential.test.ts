// The differential test: seeded random scenarios (test/conformance/scenarios.ts) judged by meshguard's
// engine and by Cilium's own agent code (tools/cilium-oracle) must get the same verdicts, per flow and
// direction. The oracle takes about half an hour to build cold, so this test runs only when its cached binary
// is present (scripts/prepare-cilium-oracle.sh, `make conformance`); otherwise it is skipped.

import t from 'tap';
import { compare, describe, oracleAvailable, oraclePath } from './differential.ts';
import { generateScenario, generateScenarios } from './scenarios.ts';

t.test('the generator is reproducible from its seed and covers the constructs', async (t) => {
  t.same(generateScenario(7, 3), generateScenario(7, 3), 'same seed and index, same scenario');
  t.notSame(generateScenario(7, 3), generateScenario(8, 3), 'another seed, another scenario');
  const text = JSON.stringify(generateScenarios(1, 400));
  for (const construct of [
    '"kind":"CiliumNetworkPolicy"', '"kind":"CiliumClusterwideNetworkPolicy"', '"kind":"NetworkPolicy"',
    '"ingressDeny"', '"egressDeny"', '"enableDefaultDeny"', '"matchExpressions"', '"toEntities"', '"fromCIDRSet"',
    '"except"', '"endPort"', '"protocol":"ANY"', '"port":"http"', '"ingress":[{}', '"egress":[]', '"toPorts":[{}]',
    '"specs"', '"ipBlock"', '"namespaceSelector"', '"policyTypes"', '"k8s:io.kubernetes.pod.namespace"',
    '"icmps"', '"http"', '"pod-template-hash"', '"reserved:', '"enablePolicy":"always"', '"enablePolicy":"never"', '"dualStack":true',
    // Ingress from non-pod sources, egress to the API server on its node, and the port-rule mutations.
    '"from":{"ip":', '"from":{"entity":"host"}', '"from":{"entity":"remote-node"}', '"from":{"entity":"kube-apiserver"}',
    '"to":{"entity":"kube-apiserver"}', '"dns":[', '"port":"1040"',
  ]) {
    t.ok(text.includes(construct), `generates ${construct}`);
  }
});

const SEED = 20261206;
const COUNT = 1500;

t.test('meshguard agrees with Cilium on every generated flow', { skip: oracleAvailable() ? false : `no cached Cilium oracle at ${oraclePath()}: run scripts/prepare-cilium-oracle.sh (or make conformance)` }, async (t) => {
  const report = compare(generateScenarios(SEED, COUNT));
  t.equal(report.scenarios, COUNT);
  t.ok(report.comparisons > COUNT * 8, `${report.comparisons} verdicts compared`);
  t.same(report.oracleErrors, [], 'the oracle answered every flow');
  t.same(report.refusalMismatches.slice(0, 3), [], 'meshguard refuses exactly the policies the agent refuses');
  t.equal(report.disagreements.length, 0, report.disagreements.slice(0, 3).map(describe).join('\n\n') || 'no disagreement');
  t.comment(`Cilium ${report.cilium}: ${report.agreements}/${report.comparisons} verdicts agree over ${report.scenarios} scenarios`);
});
