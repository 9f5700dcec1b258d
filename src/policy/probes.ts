// The kubelet's probes of a pod (ambient-probe-snat-blocked): which TCP ports it connects to, and whether
// an ambient pod's ingress admits them from the address istio-cni SNATs them to.

import type { ClusterState, Container, Pod, Probe } from '../core/objects.ts';
import { meshMode } from './istio.ts';
import { probeSourceFor, probesAdmitted } from './mesh-peers.ts';
import { ingressFromIpAllowed } from './reachability.ts';

/**
 * The port a probe connects to: a number, or the name of one of its own container's ports (as the
 * kubelet resolves it). Exec probes, probes of another host and named ports the container does not
 * declare give none.
 */
function probePort(container: Container, probe: Probe | undefined): number | undefined {
  const target = probe?.httpGet ?? probe?.tcpSocket ?? probe?.grpc;
  if (target === undefined || (target.host !== undefined && target.host !== '')) return undefined;
  const port = typeof target.port === 'string' && /^\d+$/.test(target.port) ? Number(target.port) : target.port;
  if (typeof port === 'number') return port > 0 && port < 65536 ? port : undefined;
  return container.ports?.find((p) => p.name === port && (p.protocol ?? 'TCP').toUpperCase() === 'TCP')?.containerPort;
}

/**
 * The TCP ports the kubelet probes `pod` on (liveness, readiness and startup probes of every container:
 * HTTP, TCP and gRPC all connect over TCP), each once, in container order. A named port its container
 * does not declare cannot be probed (the kubelet reports the probe as failed whatever the policy): it is
 * left out. Init containers count too: only sidecar ones (restartPolicy: Always) may have probes.
 */
export function probePorts(pod: Pod): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) {
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      const port = probePort(c, probe);
      if (port === undefined || seen.has(port)) continue;
      seen.add(port);
      out.push(port);
    }
  }
  return out;
}

/**
 * ambient-probe-snat-blocked's check for one pod: undefined when it does not apply (not ambient), else
 * the probe ports on which the pod's ingress drops the SNATed probe source (empty when every probe gets
 * through, or the pod has no network probe).
 */
export function probePortsBlocked(state: ClusterState, pod: Pod): number[] | undefined {
  if (meshMode(state, pod) !== 'ambient') return undefined;
  const ports = probePorts(pod);
  if (ports.length === 0) return [];
  const source = probeSourceFor(pod);
  return ports.filter((port) => !ingressFromIpAllowed(state, pod, source, port, 'TCP'));
}

/**
 * The same check for a pod whose probes are not known: the synthetic pod of a policy that selects no pod
 * yet (src/policy/selection.ts, subjectPods). `[0]` (every port) when no TCP port at all admits the probe
 * source, so that whatever port a future pod probes on is dropped; empty when some port does; undefined
 * when not ambient.
 */
export function unknownProbesBlocked(state: ClusterState, pod: Pod): number[] | undefined {
  const admitted = probesAdmitted(state, pod);
  return admitted === undefined ? undefined : admitted ? [] : [0];
}
