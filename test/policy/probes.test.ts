// The kubelet's probes of a pod: the ports they connect to, and whether an ambient pod's ingress admits
// them from the address istio-cni SNATs them to.

import t from 'tap';
import { probePorts, probePortsBlocked, unknownProbesBlocked } from '../../src/policy/probes.ts';
import type { Pod } from '../../src/core/objects.ts';
import { transformObject } from '../../src/state/transform.ts';
import { baseCluster, cnp, findPod, memoryState, ns, pod } from '../fixtures/cluster.ts';

const withContainers = (p: ReturnType<typeof pod>, containers: Record<string, unknown>[], initContainers?: Record<string, unknown>[]) =>
  ({ ...p, spec: { ...(p.spec as object), containers, ...(initContainers ? { initContainers } : {}) } }) as unknown as Pod;

t.test('probe ports: HTTP, TCP and gRPC probes of every container, named ports resolved, each once', async (t) => {
  const p = withContainers(pod('demo', 'a'), [
    {
      name: 'app',
      ports: [{ name: 'http', containerPort: 8000 }, { name: 'udp-thing', containerPort: 7000, protocol: 'UDP' }],
      livenessProbe: { httpGet: { path: '/health', port: 'http' } },
      readinessProbe: { httpGet: { path: '/ready', port: 8000 } },
      startupProbe: { tcpSocket: { port: '8001' } },
    },
    { name: 'grpc', livenessProbe: { grpc: { port: 9000 } } },
    // Exec probes send no traffic; a probe of another host does not reach the pod; an undeclared or
    // UDP port name cannot be probed.
    {
      name: 'other',
      ports: [{ name: 'udp-thing', containerPort: 7000, protocol: 'UDP' }],
      livenessProbe: { exec: { command: ['true'] } },
      readinessProbe: { httpGet: { port: 80, host: 'example.com' } },
      startupProbe: { tcpSocket: { port: 'udp-thing' } },
    },
    { name: 'nameless', readinessProbe: { tcpSocket: { port: 'nope' } } },
  ], [{ name: 'native-sidecar', restartPolicy: 'Always', readinessProbe: { tcpSocket: { port: 15021 } } }]);
  t.same(probePorts(p), [8000, 8001, 9000, 15021]);
  t.same(probePorts(pod('demo', 'b') as unknown as Pod), [], 'no probes');
});

t.test('the slim pod keeps what the check reads: the same ports as the object as sent', async (t) => {
  const raw = withContainers(pod('demo', 'a'), [{
    name: 'app',
    image: 'registry.example/app:1',
    ports: [{ name: 'http', containerPort: 8000 }],
    livenessProbe: { httpGet: { path: '/health', port: 'http', httpHeaders: [{ name: 'X', value: 'secret' }] }, periodSeconds: 10 },
    readinessProbe: { exec: { command: ['cat', '/tmp/ready'] } },
    startupProbe: { tcpSocket: { port: 8001 }, failureThreshold: 30 },
  }]);
  const slim = transformObject('Pod', raw) as Pod;
  t.same(slim.spec.containers[0], {
    name: 'app',
    ports: [{ name: 'http', containerPort: 8000 }],
    livenessProbe: { httpGet: { port: 'http' } },
    startupProbe: { tcpSocket: { port: 8001 } },
  }, 'handler and port only: no path, headers, timings or exec commands');
  t.same(probePorts(slim), probePorts(raw));
  // Replicas share one slim container list; different probes do not.
  const other = withContainers(pod('demo', 'b'), [{ name: 'app', ports: [{ name: 'http', containerPort: 8000 }], livenessProbe: { httpGet: { port: 8002 } } }]);
  t.not((transformObject('Pod', other) as Pod).spec.containers, slim.spec.containers);
  t.equal((transformObject('Pod', raw) as Pod).spec.containers, slim.spec.containers);
});

t.test('odd probe input is dropped, never thrown on', async (t) => {
  for (const probe of [null, 'x', 5, [], { httpGet: 'x' }, { httpGet: { port: {} } }, { tcpSocket: { port: '' } }, { grpc: {} }]) {
    const slim = transformObject('Pod', withContainers(pod('demo', 'a'), [{ name: 'app', livenessProbe: probe }])) as Pod;
    t.equal(slim.spec.containers[0]?.livenessProbe, undefined, JSON.stringify(probe));
    t.same(probePorts(slim), []);
  }
});

t.test('blocked probe ports of ambient pods', async (t) => {
  const app = withContainers(pod('demo', 'app-1', { app: 'app' }), [{
    name: 'app',
    ports: [{ name: 'http', containerPort: 8000 }],
    readinessProbe: { httpGet: { port: 'http' } },
    livenessProbe: { tcpSocket: { port: 9090 } },
  }]) as unknown as ReturnType<typeof pod>;
  const policy = (extra: Record<string, unknown>[]) => cnp('demo', 'p', { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }, ...extra] });
  const judge = (nsLabels: Record<string, string>, extra: Record<string, unknown>[]) => {
    const s = memoryState(baseCluster([ns('demo', nsLabels), app, policy(extra)]));
    const p = findPod(s, 'demo/app-1');
    return { ports: probePortsBlocked(s, p), unknown: unknownProbesBlocked(s, p) };
  };
  const AMBIENT = { 'istio.io/dataplane-mode': 'ambient' };
  t.same(judge({}, []), { ports: undefined, unknown: undefined }, 'not ambient: the probes are not SNATed');
  t.same(judge(AMBIENT, []), { ports: [9090, 8000], unknown: [0] });
  t.same(judge(AMBIENT, [{ fromCIDR: ['169.254.7.127/32'], toPorts: [{ ports: [{ port: '8000', protocol: 'TCP' }] }] }]), { ports: [9090], unknown: [] });
  t.same(judge(AMBIENT, [{ fromCIDR: ['169.254.7.127/32'] }]), { ports: [], unknown: [] });
  t.same(judge(AMBIENT, [{ fromCIDR: ['169.254.7.127/32'], toPorts: [{ ports: [{ port: '8000', protocol: 'UDP' }] }] }]), { ports: [9090, 8000], unknown: [0] }, 'UDP carries no probe');
});
