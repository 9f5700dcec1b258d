// One full audit in a fresh process, for `make bench`: loads a state file, audits every object
// (src/verdict/audit.ts) and prints one JSON line: load and audit time, objects, findings, and the
// process's peak RSS. Run with the Deployment's NODE_OPTIONS, like serve.
//
// Usage: node bench/audit-one.ts --state FILE

import { parseArgs } from 'node:util';

import { defaultConfig } from '../src/config/config.ts';
import { allRules } from '../src/rules/registry.ts';
import { tuneHeapForServing } from '../src/server/heap-tuning.ts';
import { loadSnapshot } from '../src/state/snapshot.ts';
import { auditState } from '../src/verdict/audit.ts';
import { createDecide } from '../src/verdict/decide.ts';

const { values } = parseArgs({ options: { state: { type: 'string' } } });
if (!values.state) throw new Error('--state FILE is required');
tuneHeapForServing();
const t0 = performance.now();
const state = loadSnapshot([values.state]);
const loadMs = performance.now() - t0;
const rules = allRules();
const config = defaultConfig(rules);
const t1 = performance.now();
const results = auditState(state, createDecide(rules, config), rules, config);
const auditMs = performance.now() - t1;
const findings = results.reduce((n, r) => n + r.findings.length, 0);
process.stdout.write(
  `${JSON.stringify({
    pods: state.count('Pod'),
    objects: results.length,
    withFindings: results.filter((r) => r.findings.length > 0).length,
    findings,
    loadMs,
    auditMs,
    msPerObject: auditMs / Math.max(1, results.length),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    heapUsedBytes: process.memoryUsage().heapUsed,
  })}\n`,
);
