// The Cilium agent settings meshguard needs, read from kube-system/cilium-config with the agent's own
// defaults for missing keys. Older key spellings (`tunnel`, `kube-proxy-replacement: strict|partial|probe`,
// `enable-host-reachable-services`) are still understood because long-lived clusters keep them.

import type { ClusterState } from '../core/objects.ts';
import type { CiliumConfig } from './types.ts';
import { perRevision } from './memo.ts';

/** The agent parses booleans like Go's strconv.ParseBool; anything else means "not set". */
function parseBool(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  switch (v.trim()) {
    case '1': case 't': case 'T': case 'true': case 'TRUE': case 'True':
      return true;
    case '0': case 'f': case 'F': case 'false': case 'FALSE': case 'False':
      return false;
    default:
      return undefined;
  }
}

function enablePolicyOf(v: string | undefined): CiliumConfig['enablePolicy'] {
  const m = (v ?? '').trim().toLowerCase();
  return m === 'always' || m === 'never' ? m : 'default';
}

/**
 * `routing-mode` (Cilium >= 1.14) wins; otherwise the deprecated `tunnel` key (`disabled` = native);
 * with neither, the agent runs in tunnel (VXLAN) mode.
 */
function routingModeOf(data: Readonly<Record<string, string>>): CiliumConfig['routingMode'] {
  const rm = (data['routing-mode'] ?? '').trim().toLowerCase();
  if (rm === 'native' || rm === 'tunnel') return rm;
  const tunnel = (data['tunnel'] ?? '').trim().toLowerCase();
  if (tunnel === 'disabled') return 'native';
  return 'tunnel';
}

/**
 * Full kube-proxy replacement: `true` (>= 1.14) or the older `strict`. `partial`, `probe`, `disabled`
 * and `false` do not replace kube-proxy entirely.
 */
function kprOf(v: string | undefined): { full: boolean; probe: boolean } {
  const m = (v ?? '').trim().toLowerCase();
  return { full: m === 'true' || m === 'strict' || m === '1' || m === 't', probe: m === 'probe' };
}

function compute(state: ClusterState): CiliumConfig {
  const cm = state.get('ConfigMap', 'kube-system', 'cilium-config');
  const data: Readonly<Record<string, string>> = cm?.data ?? {};
  const kpr = kprOf(data['kube-proxy-replacement']);
  // Socket LB: on with full KPR; otherwise only when asked for explicitly (`bpf-lb-sock`, or the pre-1.12
  // `enable-host-reachable-services`). `probe` enabled it whenever the kernel supported it, which every
  // kernel current Cilium runs on does.
  const sockFlag = parseBool(data['bpf-lb-sock']) ?? parseBool(data['enable-host-reachable-services']);
  const socketLB = kpr.full ? true : kpr.probe ? sockFlag !== false : sockFlag === true;
  return {
    present: cm !== undefined,
    enablePolicy: enablePolicyOf(data['enable-policy']),
    routingMode: routingModeOf(data),
    kubeProxyReplacement: kpr.full,
    socketLB,
    socketLBHostnsOnly: parseBool(data['bpf-lb-sock-hostns-only']) ?? false,
    cniExclusive: parseBool(data['cni-exclusive']) ?? true,
    l7Proxy: parseBool(data['enable-l7-proxy']) ?? true,
    nonDefaultDenyPolicies: parseBool(data['enable-non-default-deny-policies']) ?? true,
    data,
  };
}

/** kube-system/cilium-config interpreted with the agent's defaults (cached per state revision). */
export function ciliumConfig(state: ClusterState): CiliumConfig {
  return perRevision(state, 'ciliumConfig', () => compute(state));
}
