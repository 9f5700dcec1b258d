// DNS of ambient pods (ambient-dns-policy-ineffective): which DNS restrictions Cilium policies make, and
// whether ztunnel captures a pod's DNS. ztunnel answers lookups for mesh Services and ServiceEntries
// itself (the default since Istio 1.25), so those never reach Cilium's DNS proxy.

import type { ClusterState, Pod } from '../core/objects.ts';
import { meshMode } from './istio.ts';
import type { PolicyModel } from './types.ts';
import { atLeast, clusterVersions } from './versions.ts';

/** The DNS restrictions policy rules make, as short texts ("rules.dns api.github.com", "toFQDNs *.example.com"), each once. */
export function dnsRestrictions(models: readonly PolicyModel[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (s: string): void => {
    if (seen.has(s)) return;
    seen.add(s);
    out.push(s);
  };
  for (const m of models) {
    for (const el of m.elements) {
      if (el.direction !== 'egress' || el.deny) continue;
      for (const p of el.peers) if (p.type === 'fqdn') add(`toFQDNs ${p.matchName ?? p.matchPattern ?? '?'}`);
      for (const s of el.ports) {
        const dns = s.rules?.dns;
        // `matchPattern: "*"` anywhere in the list allows every name: visibility, not a restriction.
        if (!dns || dns.length === 0 || dns.some((d) => d.matchPattern?.trim() === '*')) continue;
        for (const d of dns) add(`rules.dns ${d.matchName ?? d.matchPattern ?? '?'}`);
      }
    }
  }
  return out;
}

/**
 * ztunnel captures this pod's DNS: the pod is ambient and not opted out. Ambient captures DNS by default
 * from Istio 1.25 on; with an older istiod (by its image tag) only pods that ask for it
 * (`ambient.istio.io/dns-capture: "true"`). An unknown version is taken as the newest.
 */
export function ztunnelCapturesDns(state: ClusterState, pod: Pod): boolean {
  if (meshMode(state, pod) !== 'ambient') return false;
  const a = pod.metadata.annotations ?? {};
  if (!atLeast(clusterVersions(state).istio, 1, 25)) return a['ambient.istio.io/dns-capture'] === 'true';
  return a['ambient.istio.io/dns-capture'] !== 'false' && a['ambient.istio.io/bypass-dns-capture'] !== 'true';
}
