// Changes on the DNS servers' side (dns-egress-missing): a request that touches the ingress policy of the
// kube-dns backends, or the labels of their namespace, can cut DNS for every client, not only for the
// pods it selects.

import type { Change } from '../core/change.ts';
import type { ClusterState, PolicyObject } from '../core/objects.ts';
import { dnsBackends, modelSelects, policyModel } from '../policy/index.ts';
import { isPolicyChange, labelsChanged } from './change-kinds.ts';

/**
 * Does the request change the DNS servers' side: the ingress policy of the kube-dns backends, or the
 * labels of their namespace (which namespaceSelector peers of every client policy match)?
 */
export function changesDnsServerSide(change: Change, before: ClusterState, after: ClusterState, dnsNamespace: string): boolean {
  if (isPolicyChange(change)) {
    const check = (obj: PolicyObject | undefined, state: ClusterState): boolean => {
      if (!obj) return false;
      const backends = dnsBackends(state).pods;
      // An ingress section, or enableDefaultDeny.ingress alone, can shut the backends off.
      return policyModel(obj).some((m) => (m.hasSection.ingress || m.enforces.ingress) && backends.some((b) => modelSelects(state, m, b)));
    };
    return check(change.oldObject as PolicyObject | undefined, before) || check(change.object as PolicyObject | undefined, after);
  }
  return change.kind === 'Namespace' && change.operation === 'UPDATE' && change.name === dnsNamespace && labelsChanged(change);
}
