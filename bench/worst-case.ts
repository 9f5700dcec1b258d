// The worst-case requests of issue 21: the writes whose evaluation grows with the pods they touch, on a
// 50k-pod generated state (bench/cluster-gen.ts). Each one is timed in-process (decide() on the state,
// as the scale curve does) and through `meshguard serve` (bench/run.ts), and its verdict is kept beside
// the time, so that a request that is fast because it judged nothing (the evaluation budget ran out, a
// rule threw, the request was exempt) shows as such instead of as a met target.

import type { Change } from '../src/core/change.ts';
import type { Decide, Decision } from '../src/core/decision.ts';
import type { ClusterState } from '../src/core/objects.ts';
import { BULK_NAMESPACE, type Obj } from './cluster-gen.ts';
import { median, type Clock } from './scale-curve.ts';

export interface WorstCaseRequest {
  readonly label: string;
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE';
  readonly object: Obj | null;
  readonly oldObject: Obj | null;
}

const dnsEgress = [{ toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] }];

/** An object of the generated state by kind and name (and namespace), as the generator wrote it. */
function find(objs: readonly Obj[], kind: string, name: string, namespace?: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name && x.metadata.namespace === namespace);
  if (!o) throw new Error(`the generated state has no ${kind} ${namespace ? `${namespace}/` : ''}${name}`);
  return o;
}

/**
 * The five worst-case requests against the generated state `objs` (it must hold BULK_NAMESPACE, the
 * cilium-config and the cluster-wide DNS policy: generateCluster does at 50k pods).
 */
export function worstCaseRequests(objs: readonly Obj[]): WorstCaseRequest[] {
  const bulk = find(objs, 'Namespace', BULK_NAMESPACE);
  const bulkPods = objs.filter((o) => o.kind === 'Pod' && o.metadata.namespace === BULK_NAMESPACE).length;
  const ciliumConfig = find(objs, 'ConfigMap', 'cilium-config', 'kube-system');
  const dnsPolicy = find(objs, 'CiliumClusterwideNetworkPolicy', 'allow-dns-everywhere');
  return [
    {
      label: 'CCNP endpointSelector {} with egress (every pod)',
      operation: 'CREATE',
      object: {
        apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'worst-all-egress' },
        spec: { endpointSelector: {}, egress: [...dnsEgress, { toEndpoints: [{ matchLabels: { app: 'app-2' } }], toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }] }] }] },
      },
      oldObject: null,
    },
    {
      // env=prod is every 4th namespace (~25% of pods); team in t0-t4 is 5 of 17 teams (~29%).
      label: 'CCNP by namespace label (~30% of pods)',
      operation: 'CREATE',
      object: {
        apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'worst-30pct' },
        spec: {
          endpointSelector: { matchExpressions: [{ key: 'io.cilium.k8s.namespace.labels.team', operator: 'In', values: ['t0', 't1', 't2', 't3', 't4'] }] },
          egress: [...dnsEgress, { toEndpoints: [{}] }],
        },
      },
      oldObject: null,
    },
    {
      label: `Namespace relabel into ambient (${bulkPods} pods)`,
      operation: 'UPDATE',
      object: { ...bulk, metadata: { ...bulk.metadata, labels: { ...bulk.metadata.labels, 'istio.io/dataplane-mode': 'ambient' } } },
      oldObject: bulk,
    },
    {
      // Policy enforcement on every endpoint, selected by a policy or not.
      label: 'cilium-config enable-policy=always (every pod)',
      operation: 'UPDATE',
      object: { ...ciliumConfig, data: { ...(ciliumConfig['data'] as Record<string, string>), 'enable-policy': 'always' } },
      oldObject: ciliumConfig,
    },
    {
      label: 'DELETE of the cluster-wide DNS policy',
      operation: 'DELETE',
      object: null,
      oldObject: dnsPolicy,
    },
  ];
}

/** What a decision said, in a few words and numbers: enough to tell a real verdict from an empty one. */
export interface VerdictSummary {
  readonly allowed: boolean;
  readonly findings: number;
  /** Rule ids with findings, each with its count. */
  readonly rules: Record<string, number>;
  /** Set when some rules gave no answer (budget ran out, a rule threw): the time then says nothing. */
  readonly incomplete?: string;
  readonly exempt?: string;
}

export function summarize(d: Decision): VerdictSummary {
  const rules: Record<string, number> = {};
  for (const f of d.findings) rules[f.rule] = (rules[f.rule] ?? 0) + 1;
  return {
    allowed: d.allowed,
    findings: d.findings.length,
    rules,
    ...(d.incomplete ? { incomplete: `${d.incomplete.reason}: ${d.incomplete.rules.join(', ')}` } : {}),
    ...(d.exemptReason ? { exempt: d.exemptReason } : {}),
  };
}

/** A verdict summary as one short table cell. */
export function verdictText(v: VerdictSummary): string {
  if (v.exempt) return `exempt (${v.exempt})`;
  const rules = Object.entries(v.rules).map(([r, n]) => `${r} x${n}`).join(', ');
  const head = `${v.allowed ? 'allowed' : 'denied'}, ${v.findings} finding${v.findings === 1 ? '' : 's'}${rules ? ` (${rules})` : ''}`;
  return v.incomplete ? `INCOMPLETE (${v.incomplete}); ${head}` : head;
}

export interface InProcessTiming {
  readonly label: string;
  /** Milliseconds per decide(), every timed call, then their median and max. */
  readonly samples: number[];
  readonly medianMs: number;
  readonly maxMs: number;
  readonly verdict: VerdictSummary;
}

/**
 * Times decide() of each change on `state`: one untimed call first (it fills the per-state caches a
 * served process would have filled before), then `iterations` timed calls. The verdict is the last call's.
 */
export function timeWorstCases(
  decide: Decide,
  state: ClusterState,
  changes: readonly { readonly label: string; readonly change: Change }[],
  iterations: number,
  now: Clock = () => performance.now(),
): InProcessTiming[] {
  return changes.map(({ label, change }) => {
    let last = decide(change, state);
    const samples: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const t0 = now();
      last = decide(change, state);
      samples.push(now() - t0);
    }
    return { label, samples, medianMs: median(samples), maxMs: Math.max(...samples), verdict: summarize(last) };
  });
}

export interface ServedTiming {
  readonly label: string;
  /** Client-side milliseconds per request (HTTPS POST /validate, one at a time, keep-alive). */
  readonly samples: number[];
  /** p50/p99 over every send (the target is the p99 of all of them). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /**
   * The first send apart from the others: the first request of its kind a serving process answers
   * reads per-class tables no request has filled yet (the warm-up fills most of them), so a slow p99
   * over 20 sends is often that one send. Absent in results written before it was split out.
   */
  readonly firstMs?: number;
  /** p50/p99 of the sends after the first. */
  readonly restP50Ms?: number;
  readonly restP99Ms?: number;
  /** What the last answer said: allowed, its warnings, and the start of its message when denied. */
  readonly verdict: { allowed: boolean; warnings: number; message?: string; httpStatus: number };
}

/** The figures of one request's sends: p50/p99/max over all of them, and the first apart from the rest. */
export function sendFigures(samples: readonly number[]): Pick<ServedTiming, 'p50Ms' | 'p99Ms' | 'maxMs' | 'firstMs' | 'restP50Ms' | 'restP99Ms'> {
  const rest = samples.slice(1);
  return {
    p50Ms: percentile(samples, 50),
    p99Ms: percentile(samples, 99),
    maxMs: Math.max(...samples),
    ...(samples.length > 0 ? { firstMs: samples[0]! } : {}),
    ...(rest.length > 0 ? { restP50Ms: percentile(rest, 50), restP99Ms: percentile(rest, 99) } : {}),
  };
}

/** The p-th percentile (0-100) of `xs` by nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
