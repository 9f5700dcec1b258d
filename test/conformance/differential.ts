// The differential test's engine: run the same scenarios through meshguard's policy engine (in
// process, evaluate()) and through tools/cilium-oracle (Cilium's agent code), and compare the verdicts
// per flow and direction. Used by test/conformance/differential.test.ts and `make conformance`
// (scripts/conformance.ts).

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, evaluateIngressFromAddress } from '../../src/policy/reachability.ts';
import type { Target } from '../../src/policy/types.ts';
import type { Pod, PolicyObject } from '../../src/core/objects.ts';
import { ciliumRejection } from '../../src/policy/sanitize.ts';
import { memoryState } from '../fixtures/cluster.ts';
import { APISERVER_NODE, NODES, SOURCE_ADDRESS, type Scenario, type ScenarioFlow } from './scenarios.ts';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The Cilium release tools/cilium-oracle pins (its go.mod require line). */
export function oracleCiliumVersion(): string {
  const mod = readFileSync(join(REPO, 'tools', 'cilium-oracle', 'go.mod'), 'utf8');
  const m = /^\s*(?:require\s+)?github\.com\/cilium\/cilium\s+(v\S+)/m.exec(mod);
  if (!m) throw new Error('tools/cilium-oracle/go.mod does not require github.com/cilium/cilium');
  return m[1]!;
}

/** Where scripts/prepare-cilium-oracle.sh caches the binary ($CILIUM_ORACLE overrides it). */
export function oraclePath(): string {
  return process.env.CILIUM_ORACLE || join(REPO, '.cache', 'cilium-oracle', oracleCiliumVersion(), 'cilium-oracle');
}

export function oracleAvailable(): boolean {
  return existsSync(oraclePath());
}

export type Verdict = 'allowed' | 'denied';
interface OracleFlow {
  egress?: Verdict;
  ingress?: Verdict;
  error?: string;
}
interface OracleResult {
  id: string;
  policyErrors?: Record<string, string>;
  error?: string;
  flows?: OracleFlow[];
}

export interface Disagreement {
  readonly scenario: Scenario;
  readonly flow: ScenarioFlow;
  readonly direction: 'egress' | 'ingress';
  readonly cilium: Verdict;
  readonly meshguard: Verdict;
}

export interface Report {
  readonly cilium: string;
  readonly scenarios: number;
  readonly flows: number;
  /** Verdicts compared: egress of every flow from a pod, plus ingress when the destination is a pod. */
  readonly comparisons: number;
  readonly agreements: number;
  readonly disagreements: readonly Disagreement[];
  /** Policies the agent refused to import (parse or sanitize errors), with the reason. */
  readonly refusedPolicies: number;
  readonly refusals: readonly string[];
  /** Policies the agent refused and meshguard did not (ciliumRejection), or the other way round. */
  readonly refusalMismatches: readonly string[];
  /** Oracle failures (a panic or an error for a scenario or flow): never counted as agreement. */
  readonly oracleErrors: readonly string[];
}

/** Run the oracle binary on the scenarios (one process for all of them). */
export function runOracle(scenarios: readonly Scenario[], binary = oraclePath()): { cilium: string; results: OracleResult[] } {
  const input = JSON.stringify({ scenarios });
  const out = execFileSync(binary, ['-'], { input, maxBuffer: 1 << 30, encoding: 'utf8' });
  return JSON.parse(out) as { cilium: string; results: OracleResult[] };
}

/** The state meshguard reads for a scenario: its Namespaces, Pods and policy objects. */
export function scenarioState(sc: Scenario): ReturnType<typeof memoryState> {
  const objects: Record<string, unknown>[] = [];
  for (const n of sc.namespaces) objects.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n.name, labels: n.labels } });
  for (const p of sc.pods) {
    objects.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: p.labels },
      spec: {
        serviceAccountName: p.serviceAccount,
        nodeName: 'node-a',
        containers: [{ name: 'c', ports: p.ports.map((x) => ({ name: x.name, containerPort: x.port, protocol: x.protocol })) }],
        initContainers: [{ name: 'init', ports: p.initPorts.map((x) => ({ name: x.name, containerPort: x.port, protocol: x.protocol })) }],
      },
      status: { phase: 'Running', podIP: p.ip },
    });
  }
  // The nodes, and the API server on one of them (the oracle's reserved kube-apiserver identity).
  for (const n of NODES) {
    objects.push({ apiVersion: 'v1', kind: 'Node', metadata: { name: n.name }, status: { addresses: [{ type: 'InternalIP', address: n.ip }] } });
  }
  const apiserver = NODES.find((n) => n.name === APISERVER_NODE)!;
  objects.push({
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: { name: 'kubernetes', namespace: 'default', labels: { 'kubernetes.io/service-name': 'kubernetes' } },
    addressType: 'IPv4', endpoints: [{ addresses: [apiserver.ip] }], ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
  });
  objects.push(...sc.policies);
  // The address families the oracle's agent runs with (they decide an address's world label).
  objects.push({
    apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cilium-config', namespace: 'kube-system' },
    data: { 'enable-ipv4': 'true', 'enable-ipv6': String(sc.dualStack), 'enable-policy': sc.enablePolicy },
  });
  return memoryState(objects as never);
}

function findPod(state: ReturnType<typeof memoryState>, ref: string): Pod {
  const [ns, name] = ref.split('/') as [string, string];
  const pod = state.get('Pod', ns, name);
  if (!pod) throw new Error(`scenario pod ${ref} missing`);
  return pod;
}

/**
 * meshguard's verdicts for one scenario's flows: from a pod, egress always and ingress when the target
 * is a pod; from an entity or an address, the target pod's ingress only, judged on the address the
 * source stands for (evaluateIngressFromAddress, as the control-plane rules ask it).
 */
export function meshguardVerdicts(sc: Scenario): { egress?: Verdict; ingress?: Verdict }[] {
  const state = scenarioState(sc);
  return sc.flows.map((f) => {
    if (!('pod' in f.from)) {
      if (!('pod' in f.to)) throw new Error('a flow from a non-pod source must go to a pod');
      const address = 'ip' in f.from ? f.from.ip : SOURCE_ADDRESS[f.from.entity];
      if (address === undefined) throw new Error(`no address for the source entity ${JSON.stringify(f.from)}`);
      return { ingress: evaluateIngressFromAddress(state, findPod(state, f.to.pod), address, f.port, f.protocol).verdict };
    }
    const from = findPod(state, f.from.pod);
    let target: Target;
    if ('pod' in f.to) target = { type: 'pod', pod: findPod(state, f.to.pod) };
    else if ('entity' in f.to) target = { type: 'entity', entity: f.to.entity };
    else target = { type: 'ip', ip: f.to.ip };
    const r = evaluate(state, from, target, f.port, f.protocol);
    return 'pod' in f.to ? { egress: r.egress.verdict, ingress: r.ingress.verdict } : { egress: r.egress.verdict };
  });
}

/** Compare meshguard with the oracle on the scenarios. */
export function compare(scenarios: readonly Scenario[], binary = oraclePath()): Report {
  const oracle = runOracle(scenarios, binary);
  const byId = new Map(oracle.results.map((r) => [r.id, r]));
  let flows = 0;
  let comparisons = 0;
  let agreements = 0;
  let refusedPolicies = 0;
  const disagreements: Disagreement[] = [];
  const refusals: string[] = [];
  const refusalMismatches: string[] = [];
  const oracleErrors: string[] = [];
  for (const sc of scenarios) {
    const res = byId.get(sc.id);
    if (!res || res.error || !res.flows) {
      oracleErrors.push(`${sc.id}: ${res?.error ?? 'no answer'}`);
      continue;
    }
    for (const [i, why] of Object.entries(res.policyErrors ?? {})) {
      refusedPolicies++;
      refusals.push(`${sc.id} policy ${i}: ${why}`);
    }
    sc.policies.forEach((p, i) => {
      const theirs = res.policyErrors?.[i];
      const mine = ciliumRejection(p as unknown as PolicyObject);
      if ((theirs === undefined) !== (mine === undefined)) {
        refusalMismatches.push(`${sc.id} policy ${i}: cilium ${theirs ?? 'imports it'}, meshguard ${mine ?? 'imports it'}: ${JSON.stringify(p)}`);
      }
    });
    const mine = meshguardVerdicts(sc);
    sc.flows.forEach((flow, i) => {
      flows++;
      const theirs = res.flows![i]!;
      if (theirs.error || !theirs.egress || !theirs.ingress) {
        oracleErrors.push(`${sc.id} flow ${i}: ${theirs.error ?? 'no verdict'}`);
        return;
      }
      const m = mine[i]!;
      const check = (direction: 'egress' | 'ingress', cilium: Verdict | undefined, meshguard: Verdict | undefined): void => {
        if (cilium === undefined || meshguard === undefined) return;
        comparisons++;
        if (cilium === meshguard) agreements++;
        else disagreements.push({ scenario: sc, flow, direction, cilium, meshguard });
      };
      // A reserved source has no egress policy of its own: only the pod's ingress is compared.
      if ('pod' in flow.from) check('egress', theirs.egress, m.egress);
      if ('pod' in flow.to) check('ingress', theirs.ingress, m.ingress);
    });
  }
  return { cilium: oracle.cilium, scenarios: scenarios.length, flows, comparisons, agreements, disagreements, refusedPolicies, refusals, refusalMismatches, oracleErrors };
}

/** One disagreement, with the policies that decide it, for a failure message. */
function endName(e: ScenarioFlow['to']): string {
  return 'pod' in e ? e.pod : 'entity' in e ? `entity:${e.entity}` : `ip:${e.ip}`;
}

export function describe(d: Disagreement): string {
  const f = d.flow;
  const to = endName(f.to);
  const pods = d.scenario.pods.map((p) => `${p.namespace}/${p.name} ${JSON.stringify(p.labels)} sa=${p.serviceAccount}`).join('\n    ');
  const nss = d.scenario.namespaces.map((n) => `${n.name} ${JSON.stringify(n.labels)}`).join('; ');
  return [
    `scenario ${d.scenario.id}: ${d.direction} of ${endName(f.from)} -> ${to} ${f.port}/${f.protocol}: cilium ${d.cilium}, meshguard ${d.meshguard}`,
    `  namespaces: ${nss}`,
    `  pods:\n    ${pods}`,
    `  policies:\n    ${d.scenario.policies.map((p) => JSON.stringify(p)).join('\n    ')}`,
  ].join('\n');
}
