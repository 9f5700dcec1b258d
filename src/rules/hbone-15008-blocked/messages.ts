// The words of hbone-15008-blocked's findings, one entry per code (`hbone-15008-blocked/<kind>`). Codes are
// a contract: never rename one; wording may change (test/rules/hbone-15008-blocked.test.ts keeps one golden
// test per code).

import { defineMessages } from '../../core/message.ts';
import { HBONE_PORT } from '../../policy/index.ts';
import { denyFixText, denyNames, namesAndMore, type DenyFix } from '../render-helpers.ts';

// self-contained: the summary names the first three victims and counts the rest (as it did before codes).
type Blocked = {
  /** The object of the request, `Kind ns/name` (`Namespace demo`, `ConfigMap kube-system/cilium-config`). */
  readonly subject: string;
  /** The first victims (`ns/pod`, at most three) and how many there are. */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The victims are the synthetic pod of a policy that selects no pod yet. */
  readonly synthetic: boolean;
  /** The first blocked peer: how the admitting rule names it ("pods app=hello-gateway") and its app port. */
  readonly peer: string;
  readonly appPort: number;
  /** The policy that admits the peer on the app port, `Kind ns/name`. */
  readonly policy: string;
};
type Denied = Blocked &
  DenyFix & {
    /** The policies whose ingressDeny rules drop TCP 15008 from the peer, `Kind ns/name`. */
    readonly deniedBy: readonly string[];
  };
type WaypointDenied = ViaWaypoint & DenyFix & { readonly deniedBy: readonly string[] };
type ViaWaypoint = Blocked & {
  /** The destination's waypoint, `ns/name` (its pods carry gateway.networking.k8s.io/gateway-name: name). */
  readonly waypoint: string;
};

function lead(p: Blocked): string {
  const n = p.podCount;
  return `${p.subject}: ${n} ambient pod${n === 1 ? '' : 's'}${p.synthetic ? ' (pods this policy would select)' : ''} admit mesh peers but not TCP ${HBONE_PORT} (HBONE)`;
}

const dropped = (p: Blocked): string => `; ztunnel traffic to them is dropped: ${namesAndMore(p.pods, p.podCount)}`;

const notAllowed = (p: Blocked): string => `${lead(p)} (e.g. ${p.peer}: allowed on ${p.appPort}, not on ${HBONE_PORT})${dropped(p)}`;
const deniedBy = (p: Denied | WaypointDenied): string => (p.denies.length > 0 ? denyNames(p) : p.deniedBy.join(', '));
const denied = (p: Denied): string => `${lead(p)} (e.g. ${p.peer}: allowed on ${p.appPort}, ${HBONE_PORT} denied by ${deniedBy(p)})${dropped(p)}`;
const waypointDenied = (p: WaypointDenied): string =>
  `${lead(p)} (service traffic arrives from waypoint ${p.waypoint}, whose ${HBONE_PORT} is denied by ${deniedBy(p)}, which no allow overrides)${dropped(p)}`;
const waypoint = (p: ViaWaypoint): string =>
  `${lead(p)} (service traffic arrives from waypoint ${p.waypoint}, which is not allowed on ${HBONE_PORT})${dropped(p)}`;

const allowFix = (p: Blocked): string =>
  `allow ingress on TCP ${HBONE_PORT} from the same peers in ${p.policy}, e.g. add {port: "${HBONE_PORT}", protocol: TCP} to its toPorts/ports`;
const denyFix = (p: Denied): string =>
  p.denies.length > 0
    ? denyFixText(p, { peer: `the mesh peers (e.g. ${p.peer}), whose traffic arrives over HBONE`, port: `${HBONE_PORT}/TCP` })
    : `keep TCP ${HBONE_PORT} out of the ingressDeny rules of ${p.deniedBy.join(', ')} for these pods (mesh traffic arrives on it)`;
const waypointDenyFix = (p: WaypointDenied): string =>
  denyFixText(p, { peer: `the waypoint's pods (gateway.networking.k8s.io/gateway-name: ${p.waypoint.split('/')[1]})`, port: `${HBONE_PORT}/TCP` });
const waypointFix = (p: ViaWaypoint): string =>
  `allow ingress on TCP ${HBONE_PORT} from the waypoint's pods (gateway.networking.k8s.io/gateway-name: ${p.waypoint.split('/')[1]}) in ${p.policy}`;

export const messages = defineMessages<{
  'hbone-not-allowed': Blocked;
  'hbone-still-not-allowed': Blocked;
  'hbone-denied': Denied;
  'hbone-still-denied': Denied;
  'waypoint-not-allowed': ViaWaypoint;
  'waypoint-still-not-allowed': ViaWaypoint;
  'waypoint-denied': WaypointDenied;
  'waypoint-still-denied': WaypointDenied;
}>('hbone-15008-blocked', {
  'hbone-not-allowed': {
    description: 'the request leaves ambient pods admitting a mesh peer on an app port but not on TCP 15008, which worked before (denied)',
    summary: notAllowed,
    fix: allowFix,
    detail: 'self-contained',
  },
  'hbone-still-not-allowed': {
    description: 'as hbone-not-allowed, but no peer traffic that worked before is cut off (preexisting: a warning)',
    summary: notAllowed,
    fix: allowFix,
    detail: 'self-contained',
  },
  'hbone-denied': {
    description: 'an ingressDeny rule drops TCP 15008 from a mesh peer that an allow admits on an app port, cutting off traffic that worked (denied)',
    summary: denied,
    fix: denyFix,
    detail: 'self-contained',
  },
  'hbone-still-denied': {
    description: 'as hbone-denied, but no peer traffic that worked before is cut off (preexisting: a warning)',
    summary: denied,
    fix: denyFix,
    detail: 'self-contained',
  },
  'waypoint-not-allowed': {
    description: "service traffic to ambient pods behind a waypoint arrives from the waypoint's pods on TCP 15008, which the request leaves not allowed (denied)",
    summary: waypoint,
    fix: waypointFix,
    detail: 'self-contained',
  },
  'waypoint-still-not-allowed': {
    description: 'as waypoint-not-allowed, but the waypoint was already cut off before the request (preexisting: a warning)',
    summary: waypoint,
    fix: waypointFix,
    detail: 'self-contained',
  },
  'waypoint-denied': {
    description: "service traffic to ambient pods arrives from their waypoint on TCP 15008, and an ingressDeny drops it: the fix narrows the deny, since an allow never overrides it (denied)",
    summary: waypointDenied,
    fix: waypointDenyFix,
    detail: 'self-contained',
  },
  'waypoint-still-denied': {
    description: 'as waypoint-denied, but the waypoint was already cut off before the request (preexisting: a warning)',
    summary: waypointDenied,
    fix: waypointDenyFix,
    detail: 'self-contained',
  },
});
