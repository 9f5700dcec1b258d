// Brings the cluster's meshguard reports in line with the latest audit: server-side apply of every
// report whose content changed, delete of every meshguard report no longer called for. Writes only
// openreports.io Report/ClusterReport objects labelled as meshguard's (RBAC grants nothing else).
// When the report CRDs are not installed, says so once and keeps trying at each audit.

import type { Logger } from 'pino';

import type { KubeApi } from '../state/kube-api.ts';
import { MANAGED_BY, MANAGED_BY_LABEL, reportContent, reportKey, reportPath, type PolicyReport } from './reports.ts';

export interface ReconcileOutcome {
  readonly applied: number;
  readonly deleted: number;
  readonly unchanged: number;
  readonly failed: number;
  /** The report API is not served (CRDs not installed). */
  readonly missingApi?: boolean;
}

interface Listed {
  readonly kind: 'Report' | 'ClusterReport';
  readonly namespace?: string;
  readonly name: string;
}

export class ReportWriter {
  readonly #api: KubeApi;
  readonly #logger: Logger;
  /** Content last written per report key: unchanged reports are not rewritten. */
  readonly #written = new Map<string, string>();
  /** Whether the cluster's existing meshguard reports have been listed since becoming the writer. */
  #listed = false;
  #warnedMissing = false;

  constructor(api: KubeApi, logger: Logger) {
    this.#api = api;
    this.#logger = logger;
  }

  /** Forget what was written: the next reconcile lists the cluster's reports again (after a leader change). */
  reset(): void {
    this.#written.clear();
    this.#listed = false;
  }

  async #list(kind: 'Report' | 'ClusterReport'): Promise<Listed[] | undefined> {
    const res = await this.#api.get(`${reportPath(kind)}?labelSelector=${encodeURIComponent(`${MANAGED_BY_LABEL}=${MANAGED_BY}`)}`);
    let text = '';
    res.setEncoding('utf8');
    for await (const c of res) text += c as string;
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw new Error(`listing ${kind}s: HTTP ${res.statusCode}`);
    const items = (JSON.parse(text) as { items?: { metadata: { name: string; namespace?: string } }[] }).items ?? [];
    return items.map((i) => ({ kind, name: i.metadata.name, ...(i.metadata.namespace ? { namespace: i.metadata.namespace } : {}) }));
  }

  async reconcile(desired: ReadonlyMap<string, PolicyReport>): Promise<ReconcileOutcome> {
    let applied = 0;
    let deleted = 0;
    let unchanged = 0;
    let failed = 0;
    if (!this.#listed) {
      const [ns, cluster] = await Promise.all([this.#list('Report'), this.#list('ClusterReport')]);
      if (ns === undefined || cluster === undefined) {
        if (!this.#warnedMissing) {
          this.#logger.warn('policy reports are not published: the openreports.io CRDs are not installed (kubectl apply -k deploy/crds)');
          this.#warnedMissing = true;
        }
        return { applied, deleted, unchanged, failed, missingApi: true };
      }
      this.#warnedMissing = false;
      // Reports found in the cluster and not written by this process: content unknown.
      for (const r of [...ns, ...cluster]) {
        const key = reportKey(r.kind, r.namespace, r.name);
        if (!this.#written.has(key)) this.#written.set(key, '');
      }
      this.#listed = true;
    }
    for (const [key, report] of desired) {
      const content = reportContent(report);
      if (this.#written.get(key) === content) {
        unchanged++;
        continue;
      }
      const path = `${reportPath(report.kind, report.metadata.namespace, report.metadata.name)}?fieldManager=meshguard&force=true`;
      const res = await this.#api.send('PATCH', path, report, 'application/apply-patch+yaml');
      if (res.status === 200 || res.status === 201) {
        this.#written.set(key, content);
        applied++;
      } else {
        failed++;
        this.#logger.warn({ report: key, status: res.status, body: res.body.slice(0, 300) }, 'writing a policy report failed');
      }
    }
    for (const key of [...this.#written.keys()]) {
      if (desired.has(key)) continue;
      const [kind, namespace, name] = key.split('/') as ['Report' | 'ClusterReport', string, string];
      const res = await this.#api.send('DELETE', reportPath(kind, namespace || undefined, name));
      if (res.status === 200 || res.status === 202 || res.status === 404) {
        this.#written.delete(key);
        deleted++;
      } else {
        failed++;
        this.#logger.warn({ report: key, status: res.status }, 'deleting a policy report failed');
      }
    }
    return { applied, deleted, unchanged, failed };
  }
}
