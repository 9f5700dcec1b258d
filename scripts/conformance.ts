// `make conformance`: the differential test of meshguard's policy engine against Cilium's own agent
// code (tools/cilium-oracle), on seeded random scenarios. Prints the scenario count and the agreement,
// and every disagreement in full; exits 1 when there is one, when meshguard refuses a different set of
// policies than the agent, or when the oracle failed on a scenario.
//
//   node scripts/conformance.ts [--seed N] [--count N] [--show N]

import { parseArgs } from 'node:util';
import { compare, describe, oraclePath } from '../test/conformance/differential.ts';
import { EXCLUDED, generateScenarios } from '../test/conformance/scenarios.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '20261206' },
    count: { type: 'string', default: '5000' },
    show: { type: 'string', default: '5' },
  },
});
const seed = Number(values.seed);
const count = Number(values.count);
const start = performance.now();
const scenarios = generateScenarios(seed, count);
const report = compare(scenarios, oraclePath());
const secs = ((performance.now() - start) / 1000).toFixed(1);
const pct = report.comparisons === 0 ? 0 : (100 * report.agreements) / report.comparisons;

for (const d of report.disagreements.slice(0, Number(values.show))) console.log(describe(d) + '\n');
for (const e of report.oracleErrors.slice(0, 5)) console.log(`oracle error: ${e}`);
console.log(`Cilium ${report.cilium} (tools/cilium-oracle), seed ${seed}`);
console.log(`scenarios: ${report.scenarios}, flows: ${report.flows}, verdicts compared: ${report.comparisons} (${secs}s)`);
for (const m of report.refusalMismatches.slice(0, Number(values.show))) console.log(`refusal mismatch: ${m}\n`);
console.log(`policies the agent refused (parse/sanitize): ${report.refusedPolicies}, refused differently by meshguard: ${report.refusalMismatches.length}`);
console.log(`agreement: ${report.agreements}/${report.comparisons} (${pct.toFixed(2)}%), disagreements: ${report.disagreements.length}, oracle errors: ${report.oracleErrors.length}`);
console.log(`not generated: ${EXCLUDED.map((e) => e.construct).join('; ')}`);
process.exitCode = report.disagreements.length > 0 || report.oracleErrors.length > 0 || report.refusalMismatches.length > 0 ? 1 : 0;
