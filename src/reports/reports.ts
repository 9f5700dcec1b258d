// Audit results as policy reports of the openreports.io/v1alpha1 API (docs/adr/0005-policy-reports.md):
// one Report per object with findings, in that object's namespace and scoped to it (a ClusterReport
// for cluster-scoped objects), so `kubectl get reports -A` lists what is broken and each report hangs
// on the object to fix. An object without findings has no report: fixing it deletes its report.
// Pure: the writer (reports/writer.ts) sends what this builds.

import { createHash } from 'node:crypto';

import type { AuditFinding, AuditResult } from '../verdict/audit.ts';

export const REPORT_GROUP = 'openreports.io';
export const REPORT_VERSION = 'v1alpha1';
export const REPORT_API_VERSION = `${REPORT_GROUP}/${REPORT_VERSION}`;
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'meshguard';
export const SOURCE = 'meshguard';

export interface PolicyReport {
  readonly apiVersion: typeof REPORT_API_VERSION;
  readonly kind: 'Report' | 'ClusterReport';
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels: Readonly<Record<string, string>> };
  readonly source: string;
  readonly scope: { readonly apiVersion: string; readonly kind: string; readonly name: string; readonly namespace?: string };
  readonly summary: { readonly pass: number; readonly fail: number; readonly warn: number; readonly error: number; readonly skip: number };
  readonly results: readonly ReportResult[];
}

export interface ReportResult {
  readonly source: string;
  readonly policy: string;
  readonly rule: string;
  readonly result: 'fail' | 'warn' | 'error';
  readonly severity: 'high' | 'medium' | 'low' | 'info';
  readonly scored: boolean;
  readonly message: string;
  readonly timestamp: { readonly seconds: number; readonly nanos: number };
  readonly resources: readonly { readonly apiVersion: string; readonly kind: string; readonly name: string; readonly namespace?: string }[];
  readonly properties?: Readonly<Record<string, string>>;
}

/** A report's name: stable per object, a DNS subdomain whatever the object's name. */
export function reportName(kind: string, name: string): string {
  const plain = `meshguard-${kind.toLowerCase()}-${name}`;
  if (plain.length <= 253) return plain;
  const hash = createHash('sha256').update(`${kind}/${name}`).digest('hex').slice(0, 16);
  // A DNS subdomain: the cut must not end in '-' or '.' before the hash's '-'.
  let head = plain.slice(0, 253 - 17);
  while (head.endsWith('-') || head.endsWith('.')) head = head.slice(0, -1);
  return `${head}-${hash}`;
}

function resultOf(f: AuditFinding): Pick<ReportResult, 'result' | 'severity' | 'scored'> {
  if (f.failed) return { result: 'error', severity: 'info', scored: false };
  // deny-level problems fail; warn and audit ones warn (not scored), as the report API defines.
  if (f.action === 'deny') return { result: 'fail', severity: 'high', scored: true };
  return { result: 'warn', severity: f.action === 'warn' ? 'medium' : 'low', scored: false };
}

/** At most this many characters of a message or property: reports are read by people and UIs. */
const MAX_TEXT = 1024;
const clip = (s: string): string => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 3)}...` : s);

/** Every report the results call for, keyed by `kind/namespace/name` of the report. */
export function desiredReports(results: readonly AuditResult[], now: Date, docsOf: (rule: string) => string | undefined = () => undefined): Map<string, PolicyReport> {
  const out = new Map<string, PolicyReport>();
  const seconds = Math.floor(now.getTime() / 1000);
  for (const r of results) {
    if (r.findings.length === 0) continue;
    const scope = { apiVersion: r.apiVersion, kind: r.kind, name: r.name, ...(r.namespace ? { namespace: r.namespace } : {}) };
    const results: ReportResult[] = r.findings.map((f) => {
      const docs = docsOf(f.rule);
      const properties: Record<string, string> = {
        code: f.code,
        ...(f.fix ? { fix: clip(f.fix) } : {}),
        ...(f.victims && f.victims.length > 0 ? { victims: clip(f.victims.join(', ')) } : {}),
        ...(f.victimCount !== undefined ? { victimCount: String(f.victimCount) } : {}),
        ...(f.shared ? { shared: 'true' } : {}),
        ...(docs ? { docs } : {}),
      };
      return {
        source: SOURCE,
        policy: f.rule,
        rule: f.rule,
        ...resultOf(f),
        message: clip(f.message),
        timestamp: { seconds, nanos: 0 },
        resources: [scope],
        ...(Object.keys(properties).length > 0 ? { properties } : {}),
      };
    });
    const summary = { pass: 0, fail: 0, warn: 0, error: 0, skip: 0 };
    for (const x of results) summary[x.result]++;
    const kind = r.namespace ? ('Report' as const) : ('ClusterReport' as const);
    const name = reportName(r.kind, r.name);
    const report: PolicyReport = {
      apiVersion: REPORT_API_VERSION,
      kind,
      metadata: { name, ...(r.namespace ? { namespace: r.namespace } : {}), labels: { [MANAGED_BY_LABEL]: MANAGED_BY } },
      source: SOURCE,
      scope,
      summary,
      results,
    };
    out.set(reportKey(kind, r.namespace, name), report);
  }
  return out;
}

export function reportKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`;
}

/** What a report says, without its timestamps: a report whose content is unchanged is not rewritten. */
export function reportContent(r: PolicyReport): string {
  return JSON.stringify({ ...r, results: r.results.map(({ timestamp: _t, ...rest }) => rest) });
}

/** The API path of a report (collection when name is undefined). */
export function reportPath(kind: 'Report' | 'ClusterReport', namespace?: string, name?: string): string {
  const base = `/apis/${REPORT_GROUP}/${REPORT_VERSION}`;
  const plural = kind === 'Report' ? 'reports' : 'clusterreports';
  const coll = kind === 'Report' && namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}` : `${base}/${plural}`;
  return name === undefined ? coll : `${coll}/${encodeURIComponent(name)}`;
}
