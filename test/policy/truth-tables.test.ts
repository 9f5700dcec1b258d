// Truth tables in the style of the Kubernetes e2e network-policy suite: namespaces x/y/z with pods a/b/c,
// each serving 80/TCP, 81/TCP and 80/UDP. Every scenario asserts the full 9x9 matrix for all three
// ports (and, where it matters, a row of non-pod targets).
//
// Matrix notation: one line per client pod, `xa ... ... ...`, then three groups of three characters,
// one per server pod (x/a x/b x/c, y/a ..., z/a ...): `.` = allowed, `X` = denied.

import t, { type Test } from 'tap';
import { evaluate, evaluateIngressFromAddress } from '../../src/policy/reachability.ts';
import { podsSelectedBy } from '../../src/policy/selection.ts';
import type { Protocol, Target } from '../../src/policy/types.ts';
import type { MemoryState } from '../../src/state/store.ts';
import { baseCluster, ccnp, cnp, findPod, HEALTHY_CILIUM_CONFIG, memoryState, netpol, ns, pod } from '../fixtures/cluster.ts';

const NAMESPACES = ['x', 'y', 'z'] as const;
const PODS = ['a', 'b', 'c'] as const;
const SERVE_PORTS = [
  { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
  { name: 'serve-81-tcp', containerPort: 81, protocol: 'TCP' },
  { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
];

type Obj = Parameters<typeof memoryState>[0][number] & Record<string, unknown>;

function cluster(policies: Obj[], ciliumData: Record<string, string> = HEALTHY_CILIUM_CONFIG): MemoryState {
  const objs: Obj[] = [];
  NAMESPACES.forEach((n, i) => {
    objs.push(ns(n, { ns: n }) as Obj);
    PODS.forEach((p, j) => objs.push(pod(n, p, { pod: p }, { ports: SERVE_PORTS, ip: `10.0.${i + 1}.${j + 1}` }) as Obj));
  });
  return memoryState(baseCluster([...objs, ...policies] as never, ciliumData));
}

function matrix(s: MemoryState, port: number, protocol: Protocol): string {
  const lines: string[] = [];
  for (const fn of NAMESPACES) {
    for (const fp of PODS) {
      const from = findPod(s, `${fn}/${fp}`);
      const groups = NAMESPACES.map((tn) =>
        PODS.map((tp) => (evaluate(s, from, { type: 'pod', pod: findPod(s, `${tn}/${tp}`) }, port, protocol).allowed ? '.' : 'X')).join(''),
      );
      lines.push(`${fn}${fp} ${groups.join(' ')}`);
    }
  }
  return lines.join('\n');
}

/** Normalizes an expected matrix written in the test (indentation, blank lines). */
function m(text: string): string {
  return text
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).join(' '))
    .join('\n');
}

/** A pod always reaches itself (its own address stays in its network namespace): `.` on the diagonal. */
function loopback(matrix: string): string {
  return matrix
    .split('\n')
    .map((line, i) => {
      const [row, ...groups] = line.split(' ');
      const cells = groups.join('').split('');
      cells[i] = '.';
      const c = cells.join('');
      return `${row} ${c.slice(0, 3)} ${c.slice(3, 6)} ${c.slice(6)}`;
    })
    .join('\n');
}

const ALL = m(`
  xa ... ... ...
  xb ... ... ...
  xc ... ... ...
  ya ... ... ...
  yb ... ... ...
  yc ... ... ...
  za ... ... ...
  zb ... ... ...
  zc ... ... ...`);

interface Expect {
  tcp80: string;
  tcp81?: string;
  udp80?: string;
}

/** Asserts the full matrix on 80/TCP, 81/TCP and 80/UDP (81/TCP and 80/UDP default to the 80/TCP matrix). */
function expectMatrices(t: Test, s: MemoryState, e: Expect): void {
  t.equal(matrix(s, 80, 'TCP'), m(e.tcp80), '80/TCP');
  t.equal(matrix(s, 81, 'TCP'), m(e.tcp81 ?? e.tcp80), '81/TCP');
  t.equal(matrix(s, 80, 'UDP'), m(e.udp80 ?? e.tcp80), '80/UDP');
}

// Non-pod targets seen from every client (a row per client pod).
const TARGETS: { label: string; target: Target; port: number; protocol: Protocol }[] = [
  { label: 'api', target: { type: 'entity', entity: 'kube-apiserver' }, port: 6443, protocol: 'TCP' },
  { label: 'wld', target: { type: 'ip', ip: '8.8.8.8' }, port: 443, protocol: 'TCP' },
  { label: 'w10', target: { type: 'ip', ip: '10.9.9.9' }, port: 443, protocol: 'TCP' },
  { label: 'exc', target: { type: 'ip', ip: '10.0.200.5' }, port: 443, protocol: 'TCP' },
  { label: 'rnd', target: { type: 'ip', ip: '192.168.0.11' }, port: 10250, protocol: 'TCP' },
];

/** One line per client: `xa .X...` with one character per TARGETS entry. */
function targetRows(s: MemoryState): string {
  const lines: string[] = [];
  for (const fn of NAMESPACES) {
    for (const fp of PODS) {
      const from = findPod(s, `${fn}/${fp}`);
      lines.push(`${fn}${fp} ${TARGETS.map((x) => (evaluate(s, from, x.target, x.port, x.protocol).allowed ? '.' : 'X')).join('')}`);
    }
  }
  return lines.join('\n');
}
const ALL_TARGETS = m(['xa', 'xb', 'xc', 'ya', 'yb', 'yc', 'za', 'zb', 'zc'].map((r) => `${r} .....`).join('\n'));

/** Client row `row` gets `chars` for the targets; every other row allows everything. */
function onlyRow(row: string, chars: string): string {
  return ALL_TARGETS.split('\n').map((l) => (l.startsWith(row + ' ') ? `${row} ${chars}` : l)).join('\n');
}

// ---------------------------------------------------------------------------------------------------

t.test('1. no policy: everything allowed', async (t) => {
  const s = cluster([]);
  expectMatrices(t, s, { tcp80: ALL });
  t.equal(targetRows(s), ALL_TARGETS);
});

t.test('2. NetworkPolicy deny-all ingress in x (podSelector {}, policyTypes [Ingress])', async (t) => {
  const s = cluster([netpol('x', 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] }) as Obj]);
  const x = m(`
    xa .XX ... ...
    xb X.X ... ...
    xc XX. ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc XXX ... ...`);
  expectMatrices(t, s, { tcp80: x });
  t.equal(targetRows(s), ALL_TARGETS, 'ingress policy does not limit egress');
});

t.test('3. NetworkPolicy deny-all egress in x', async (t) => {
  const s = cluster([netpol('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] }) as Obj]);
  const x = m(`
    xa .XX XXX XXX
    xb X.X XXX XXX
    xc XX. XXX XXX
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`);
  expectMatrices(t, s, { tcp80: x });
  t.equal(targetRows(s), m(`
    xa XXXXX
    xb XXXXX
    xc XXXXX
    ya .....
    yb .....
    yc .....
    za .....
    zb .....
    zc .....`));
});

t.test('4. same-namespace only: NetworkPolicy ingress from podSelector {} in x', async (t) => {
  const s = cluster([netpol('x', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }) as Obj]);
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb ... ... ...
    xc ... ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc XXX ... ...`,
  });
});

t.test('5. AND peer: namespaceSelector + podSelector in one peer (only y/b may reach x/a)', async (t) => {
  const s = cluster([
    netpol('x', 'and', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'b' } } }] }],
    }) as Obj,
  ]);
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb X.. ... ...
    xc X.. ... ...
    ya X.. ... ...
    yb ... ... ...
    yc X.. ... ...
    za X.. ... ...
    zb X.. ... ...
    zc X.. ... ...`,
  });
});

t.test('6. OR peers: namespaceSelector and podSelector as separate peers (y/* or x/b may reach x/a)', async (t) => {
  const s = cluster([
    netpol('x', 'or', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }],
    }) as Obj,
  ]);
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb ... ... ...
    xc X.. ... ...
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za X.. ... ...
    zb X.. ... ...
    zc X.. ... ...`,
  });
});

t.test('7. named port: NetworkPolicy allows serve-81-tcp only into x/a', async (t) => {
  const s = cluster([
    netpol('x', 'named', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] }) as Obj,
  ]);
  const denied = m(`
    xa ... ... ...
    xb X.. ... ...
    xc X.. ... ...
    ya X.. ... ...
    yb X.. ... ...
    yc X.. ... ...
    za X.. ... ...
    zb X.. ... ...
    zc X.. ... ...`);
  expectMatrices(t, s, { tcp80: denied, tcp81: ALL, udp80: denied });
});

t.test('8. default protocol TCP: NetworkPolicy port 80 without protocol does not allow 80/UDP', async (t) => {
  const s = cluster([netpol('x', 'p80', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] }) as Obj]);
  const denied = m(`
    xa .XX ... ...
    xb X.X ... ...
    xc XX. ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc XXX ... ...`);
  expectMatrices(t, s, { tcp80: ALL, tcp81: denied, udp80: denied });
});

t.test('9. ipBlock with except: CIDR peers never match pods (Cilium), only world addresses', async (t) => {
  const s = cluster([
    netpol('x', 'cidr', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.200.0/24'] } }] }],
    }) as Obj,
  ]);
  expectMatrices(t, s, {
    tcp80: `
    xa .XX XXX XXX
    xb ... ... ...
    xc ... ... ...
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`,
  });
  // api (node IP) X, 8.8.8.8 X, 10.9.9.9 allowed, 10.0.200.5 in except X, remote node X
  t.equal(targetRows(s), onlyRow('xa', 'XX.XX'));
});

t.test('10. stacked NetworkPolicies on x/a: union of allows (y on 80, z on 81)', async (t) => {
  const s = cluster([
    netpol('x', 'from-y-80', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }], ports: [{ port: 80, protocol: 'TCP' }] }],
    }) as Obj,
    netpol('x', 'from-z-81', {
      podSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'z' } } }], ports: [{ port: 81 }] }],
    }) as Obj,
  ]);
  const row = (yAllowed: boolean, zAllowed: boolean): string => {
    const out: string[] = [];
    for (const n of NAMESPACES) for (const p of PODS) {
      const ok = (n === 'y' && yAllowed) || (n === 'z' && zAllowed);
      out.push(`${n}${p} ${ok || (n === 'x' && p === 'a') ? '.' : 'X'}.. ... ...`);
    }
    return out.join('\n');
  };
  expectMatrices(t, s, { tcp80: row(true, false), tcp81: row(false, true), udp80: row(false, false) });
});

t.test('11. CNP fromEndpoints [{}] = pods of the policy namespace only', async (t) => {
  const s = cluster([cnp('x', 'same-ns', { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] }) as Obj]);
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb ... ... ...
    xc ... ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc XXX ... ...`,
  });
});

t.test('12. CCNP fromEndpoints [{}] = every pod in the cluster', async (t) => {
  const s = cluster([
    ccnp('x-from-all-pods', {
      endpointSelector: { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'x' } },
      ingress: [{ fromEndpoints: [{}] }],
      egress: [{ toEndpoints: [{}] }],
    }) as Obj,
  ]);
  expectMatrices(t, s, { tcp80: ALL });
  // ...but not the apiserver, world or nodes: {} in a CCNP selects pods only.
  t.equal(targetRows(s), m(`
    xa XXXXX
    xb XXXXX
    xc XXXXX
    ya .....
    yb .....
    yc .....
    za .....
    zb .....
    zc .....`));
});

t.test('13. egress: [] does not enforce; egress: [{}] and toEndpoints: [] enforce and allow nothing', async (t) => {
  const empty = cluster([cnp('x', 'empty', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [] }) as Obj]);
  expectMatrices(t, empty, { tcp80: ALL });
  t.equal(targetRows(empty), ALL_TARGETS);
  const xa = findPod(empty, 'x/a');
  t.equal(evaluate(empty, xa, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').egress.enforced, false, 'egress: [] is no egress section');
  // The agent adds an L3-only filter only for an element with an L3 selector (L4PolicyMap.mergeL4Filter):
  // `{}` has none and no ports, so it allows nothing, like `toEndpoints: []`.
  const xaOnly = `
    xa .XX XXX XXX
    xb ... ... ...
    xc ... ... ...
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`;
  for (const [name, egress] of [['braces', [{}]], ['none', [{ toEndpoints: [] }]]] as const) {
    const s = cluster([cnp('x', name, { endpointSelector: { matchLabels: { pod: 'a' } }, egress }) as Obj]);
    expectMatrices(t, s, { tcp80: xaOnly });
    t.equal(targetRows(s), onlyRow('xa', 'XXXXX'), `${name}: x/a reaches no other target`);
    const r = evaluate(s, findPod(s, 'x/a'), { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP');
    t.equal(r.egress.enforced, true, `${name} puts x/a into default deny...`);
    t.same(r.egress.allowing, [], '...and allows nothing');
    t.same(r.egress.decidingPolicies, [{ kind: 'CiliumNetworkPolicy', namespace: 'x', name }], '...the default deny comes from it');
  }
});

t.test('14. deny precedence: ingressDeny from y on 80/TCP beats an allow-all in x', async (t) => {
  const s = cluster([
    cnp('x', 'allow-all', { endpointSelector: {}, ingress: [{ fromEntities: ['all'] }] }) as Obj,
    cnp('x', 'deny-y-80', {
      endpointSelector: {},
      ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'y' } }], toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }],
    }) as Obj,
  ]);
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb ... ... ...
    xc ... ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`,
    tcp81: ALL,
    udp80: ALL,
  });
});

t.test('15. entities: kube-apiserver, world, cluster', async (t) => {
  const api = cluster([cnp('x', 'api', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: ['kube-apiserver'] }] }) as Obj]);
  t.equal(targetRows(api), onlyRow('xa', '.XXXX'), 'kube-apiserver only');
  t.equal(matrix(api, 80, 'TCP').split('\n')[0], 'xa .XX XXX XXX');
  const world = cluster([cnp('x', 'world', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: ['world'] }] }) as Obj]);
  t.equal(targetRows(world), onlyRow('xa', 'X...X'), 'world: not the apiserver on a node, not nodes');
  t.equal(matrix(world, 80, 'TCP').split('\n')[0], 'xa .XX XXX XXX', 'world is not pods');
  const clusterE = cluster([cnp('x', 'cluster', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: ['cluster'] }] }) as Obj]);
  t.equal(targetRows(clusterE), onlyRow('xa', '.XXX.'), 'cluster: apiserver and nodes, not world');
  expectMatrices(t, clusterE, { tcp80: ALL });
  const host = cluster([cnp('x', 'rn', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: ['remote-node'] }] }) as Obj]);
  // The apiserver sits on node-a (the pods' own node: host), 192.168.0.11 is node-b (remote-node).
  t.equal(targetRows(host), onlyRow('xa', 'XXXX.'));
});

t.test('16. CIDR peers do not match pods even when the pod IP is inside the prefix', async (t) => {
  const s = cluster([cnp('x', 'cidr', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toCIDR: ['10.0.0.0/8'] }] }) as Obj]);
  expectMatrices(t, s, {
    tcp80: `
    xa .XX XXX XXX
    xb ... ... ...
    xc ... ... ...
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`,
  });
  t.equal(targetRows(s), onlyRow('xa', 'XX..X'), '10.9.9.9 and 10.0.200.5 are world addresses inside the prefix');
  // Pod IPs given as cidr: targets resolve to the pod identity, so the CIDR rule still does not match.
  const xa = findPod(s, 'x/a');
  t.equal(evaluate(s, xa, { type: 'ip', ip: '10.0.2.1' }, 80, 'TCP').allowed, false);
});

t.test('17. CNP + NetworkPolicy union on x/a (NetworkPolicy from y, CNP from z)', async (t) => {
  const s = cluster([
    netpol('x', 'np-from-y', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }] }) as Obj,
    cnp('x', 'cnp-from-z', {
      endpointSelector: { matchLabels: { pod: 'a' } },
      ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'z' } }] }],
    }) as Obj,
  ]);
  // NetworkPolicy ports default to all ports and protocols when `ports` is absent.
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb X.. ... ...
    xc X.. ... ...
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`,
  });
});

t.test('18. podSelector alone = same namespace; namespaceSelector {} + podSelector = that pod in every namespace', async (t) => {
  const same = cluster([netpol('x', 'b-only', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }] }) as Obj]);
  expectMatrices(t, same, {
    tcp80: `
    xa ... ... ...
    xb ... ... ...
    xc X.. ... ...
    ya X.. ... ...
    yb X.. ... ...
    yc X.. ... ...
    za X.. ... ...
    zb X.. ... ...
    zc X.. ... ...`,
  });
  const every = cluster([
    netpol('x', 'b-any-ns', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { pod: 'b' } } }] }] }) as Obj,
  ]);
  expectMatrices(t, every, {
    tcp80: `
    xa ... ... ...
    xb ... ... ...
    xc X.. ... ...
    ya X.. ... ...
    yb ... ... ...
    yc X.. ... ...
    za X.. ... ...
    zb ... ... ...
    zc X.. ... ...`,
  });
});

t.test('19. endPort range 80-81 (TCP by default)', async (t) => {
  const s = cluster([netpol('y', 'range', { podSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 81 }] }] }) as Obj]);
  expectMatrices(t, s, {
    tcp80: ALL,
    udp80: `
    xa ... XXX ...
    xb ... XXX ...
    xc ... XXX ...
    ya ... .XX ...
    yb ... X.X ...
    yc ... XX. ...
    za ... XXX ...
    zb ... XXX ...
    zc ... XXX ...`,
  });
});

t.test('20. L4-only CNP rule (toPorts without a peer): any peer on 80/TCP into z', async (t) => {
  const s = cluster([cnp('z', 'l4', { endpointSelector: {}, ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }] }] }) as Obj]);
  const denied = m(`
    xa ... ... XXX
    xb ... ... XXX
    xc ... ... XXX
    ya ... ... XXX
    yb ... ... XXX
    yc ... ... XXX
    za ... ... .XX
    zb ... ... X.X
    zc ... ... XX.`);
  expectMatrices(t, s, { tcp80: ALL, tcp81: denied, udp80: denied });
});

t.test('21. enable-policy always / never', async (t) => {
  const always = cluster([], { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' });
  const none = loopback(m(ALL.replace(/\./g, 'X')));
  expectMatrices(t, always, { tcp80: none });
  const never = cluster([netpol('x', 'deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }) as Obj], { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' });
  expectMatrices(t, never, { tcp80: ALL });
});

t.test('22. enableDefaultDeny: false — a deny-only policy that does not default-deny', async (t) => {
  const policy = cnp('x', 'deny-y', {
    endpointSelector: {},
    enableDefaultDeny: { ingress: false },
    ingressDeny: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'y' } }] }],
  }) as Obj;
  const honoured = cluster([policy]);
  const onlyY = m(`
    xa ... ... ...
    xb ... ... ...
    xc ... ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za ... ... ...
    zb ... ... ...
    zc ... ... ...`);
  expectMatrices(t, honoured, { tcp80: onlyY });
  // With enable-non-default-deny-policies off, the ingressDeny section puts x into default deny.
  const ignored = cluster([policy], { ...HEALTHY_CILIUM_CONFIG, 'enable-non-default-deny-policies': 'false' });
  expectMatrices(t, ignored, {
    tcp80: `
    xa .XX ... ...
    xb X.X ... ...
    xc XX. ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc XXX ... ...`,
  });
});

t.test('23. CNP namespace-label selectors (io.cilium.k8s.namespace.labels.*) and service accounts', async (t) => {
  const s = cluster([
    cnp('x', 'nslabel', {
      endpointSelector: {},
      ingress: [
        { fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.namespace.labels.ns': 'z', 'k8s:io.kubernetes.pod.namespace': 'z', pod: 'c' } }] },
        { fromEndpoints: [{ matchLabels: { 'k8s:io.cilium.k8s.policy.serviceaccount': 'default', 'k8s:io.kubernetes.pod.namespace': 'y', pod: 'a' } }] },
      ],
    }) as Obj,
  ]);
  expectMatrices(t, s, {
    tcp80: `
    xa .XX ... ...
    xb X.X ... ...
    xc XX. ... ...
    ya ... ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc ... ... ...`,
  });
});

t.test('24. enableDefaultDeny without a section in that direction enforces nothing there', async (t) => {
  // The agent decides default deny per rule element (RulesToPolicyEntries): a rule without an egress
  // element contributes nothing at egress, whatever enableDefaultDeny.egress says.
  for (const [dir, section] of [['egress', 'ingress'], ['ingress', 'egress']] as const) {
    const s = cluster([
      cnp('x', `edd-${dir}`, {
        endpointSelector: { matchLabels: { pod: 'a' } },
        enableDefaultDeny: { [dir]: true },
        [section]: [{ [section === 'ingress' ? 'fromEntities' : 'toEntities']: ['all'] }],
      }) as Obj,
    ]);
    expectMatrices(t, s, { tcp80: ALL });
    const xa = findPod(s, 'x/a');
    const other = findPod(s, 'y/b');
    const r = dir === 'egress' ? evaluate(s, xa, { type: 'pod', pod: other }, 80, 'TCP').egress : evaluate(s, other, { type: 'pod', pod: xa }, 80, 'TCP').ingress;
    t.equal(r.enforced, false, `enableDefaultDeny.${dir}: true with only an ${section} section leaves ${dir} open`);
  }
  // With an element in the direction, enableDefaultDeny.egress: true does enforce.
  const s = cluster([cnp('x', 'edd', { endpointSelector: { matchLabels: { pod: 'a' } }, enableDefaultDeny: { egress: true }, egress: [{ toEndpoints: [] }] }) as Obj]);
  t.equal(evaluate(s, findPod(s, 'x/a'), { type: 'pod', pod: findPod(s, 'y/b') }, 80, 'TCP').egress.enforced, true);
});

t.test('25. namespace constraints in a CNP endpointSelector: only k8s:io.kubernetes.pod.namespace is overridden', async (t) => {
  const denyAllIngress = (name: string, endpointSelector: Record<string, unknown>) => cnp('x', name, { endpointSelector, ingress: [{ fromEndpoints: [] }] }) as Obj;
  const xIsolated = `
    xa .XX ... ...
    xb X.X ... ...
    xc XX. ... ...
    ya XXX ... ...
    yb XXX ... ...
    yc XXX ... ...
    za XXX ... ...
    zb XXX ... ...
    zc XXX ... ...`;
  // ParseToCiliumRule overwrites the matchLabel k8s:io.kubernetes.pod.namespace with the policy
  // namespace: the policy selects the pods of x.
  expectMatrices(t, cluster([denyAllIngress('k8s-key', { matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'y' } })]), { tcp80: xIsolated });
  // Every other namespace constraint is kept and ANDed with the policy namespace: no pod is selected.
  for (const [name, sel] of [
    ['plain-key', { matchLabels: { 'io.kubernetes.pod.namespace': 'y' } }],
    ['any-key', { matchLabels: { 'any:io.kubernetes.pod.namespace': 'y' } }],
    ['in-other', { matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'In', values: ['y', 'z'] }] }],
    ['notin-own', { matchExpressions: [{ key: 'io.kubernetes.pod.namespace', operator: 'NotIn', values: ['x'] }] }],
  ] as const) {
    const s = cluster([denyAllIngress(name, sel)]);
    expectMatrices(t, s, { tcp80: ALL });
    t.equal(evaluate(s, findPod(s, 'y/a'), { type: 'pod', pod: findPod(s, 'x/a') }, 80, 'TCP').ingress.enforced, false, `${name}: selects no pod of x`);
  }
  // A kept constraint that x satisfies still selects x.
  expectMatrices(t, cluster([denyAllIngress('in-own', { matchExpressions: [{ key: 'io.kubernetes.pod.namespace', operator: 'In', values: ['x', 'y'] }] })]), { tcp80: xIsolated });
  t.same(podsSelectedBy(cluster([]), denyAllIngress('plain', { matchLabels: { 'io.kubernetes.pod.namespace': 'y' } }) as never), [], 'podsSelectedBy agrees');
});

t.test('26. NetworkPolicy rules apply whatever policyTypes says (ParseNetworkPolicy)', async (t) => {
  // policyTypes: [Egress] with ingress rules: the agent still imports the ingress rules, which put x/a
  // into default deny at ingress and allow only y.
  const s = cluster([
    netpol('x', 'np', {
      podSelector: { matchLabels: { pod: 'a' } },
      policyTypes: ['Egress'],
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } } }] }],
      egress: [{}],
    }) as Obj,
  ]);
  expectMatrices(t, s, {
    tcp80: `
    xa ... ... ...
    xb X.. ... ...
    xc X.. ... ...
    ya ... ... ...
    yb ... ... ...
    yc ... ... ...
    za X.. ... ...
    zb X.. ... ...
    zc X.. ... ...`,
  });
});

t.test('27. policy-default-local-cluster: peer selectors without reserved keys select pods only (Cilium 1.19+)', async (t) => {
  // A CNP peer with its own namespace expression gets no namespace defaulting; with the local-cluster
  // default the agent still adds io.cilium.k8s.policy.cluster, which no reserved identity carries.
  const policy = cnp('x', 'not-y', {
    endpointSelector: { matchLabels: { pod: 'a' } },
    egress: [{ toEndpoints: [{ matchExpressions: [{ key: 'k8s:io.kubernetes.pod.namespace', operator: 'NotIn', values: ['y'] }] }] }],
  }) as Obj;
  const agent = (tag: string) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cilium-1', namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
    spec: { hostNetwork: true, nodeName: 'node-a', containers: [{ name: 'cilium-agent', image: `quay.io/cilium/cilium:${tag}` }] }, status: { phase: 'Running' },
  }) as Obj;
  const hostVerdict = (s: MemoryState) => evaluate(s, findPod(s, 'x/a'), { type: 'entity', entity: 'remote-node' }, 80, 'TCP').egress.verdict;
  t.equal(hostVerdict(cluster([policy])), 'denied', 'unknown version: the 1.19+ default, remote-node is not selected');
  t.equal(hostVerdict(cluster([policy, agent('v1.19.4')])), 'denied', '1.19');
  t.equal(hostVerdict(cluster([policy, agent('v1.18.10')])), 'allowed', '1.18: no cluster filter, NotIn selects remote-node');
  t.equal(hostVerdict(cluster([policy], { ...HEALTHY_CILIUM_CONFIG, 'policy-default-local-cluster': 'false' })), 'allowed', 'turned off in cilium-config');
  const s = cluster([policy]);
  t.equal(evaluate(s, findPod(s, 'x/a'), { type: 'pod', pod: findPod(s, 'z/b') }, 80, 'TCP').egress.verdict, 'allowed', 'pods outside y are still selected');
  // A reserved: selector keeps selecting its identity.
  const reserved = cluster([cnp('x', 'to-host', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEndpoints: [{ matchLabels: { 'reserved:remote-node': '' } }] }] }) as Obj]);
  t.equal(hostVerdict(reserved), 'allowed');
});

t.test('28. world labels follow the address families (getWorldLabel); /0 with except covers a world peer', async (t) => {
  const byLabel = (label: string) => cnp('x', `to-${label}`, { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEndpoints: [{ matchLabels: { [`reserved:${label}`]: '' } }] }] }) as Obj;
  const ip = (s: MemoryState) => evaluate(s, findPod(s, 'x/a'), { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').egress.verdict;
  const dual = { ...HEALTHY_CILIUM_CONFIG, 'enable-ipv6': 'true' };
  t.equal(ip(cluster([byLabel('world')])), 'allowed', 'single stack (default): an IPv4 address is reserved:world');
  t.equal(ip(cluster([byLabel('world-ipv4')])), 'denied', 'single stack: nothing is reserved:world-ipv4');
  t.equal(ip(cluster([byLabel('world')], dual)), 'denied', 'dual stack: an IPv4 address is not reserved:world...');
  t.equal(ip(cluster([byLabel('world-ipv4')], dual)), 'allowed', '...but reserved:world-ipv4');
  const entity = (e: string) => cnp('x', `ent-${e}`, { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: [e] }] }) as Obj;
  t.equal(ip(cluster([entity('world')])), 'allowed', 'the world entity covers both');
  t.equal(ip(cluster([entity('world')], dual)), 'allowed');
  t.equal(ip(cluster([entity('world-ipv4')])), 'denied', 'single stack: the world-ipv4 entity selects no address');
  t.equal(ip(cluster([entity('world-ipv4')], dual)), 'allowed');
  // 0.0.0.0/0 except a hole: the world identity (an address in no named prefix) is still selected.
  const holed = cluster([cnp('x', 'holed', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toCIDRSet: [{ cidr: '0.0.0.0/0', except: ['8.8.8.0/24'] }] }] }) as Obj], dual);
  const xa = findPod(holed, 'x/a');
  t.equal(evaluate(holed, xa, { type: 'entity', entity: 'world-ipv4' }, 443, 'TCP').egress.verdict, 'allowed', 'entity:world-ipv4');
  t.equal(evaluate(holed, xa, { type: 'ip', ip: '8.8.8.8' }, 443, 'TCP').egress.verdict, 'denied', 'an address in the hole');
  t.equal(evaluate(holed, xa, { type: 'ip', ip: '1.1.1.1' }, 443, 'TCP').egress.verdict, 'allowed');
});

t.test('29. the identity-label filter: selectors on labels the agent drops select nothing', async (t) => {
  // pkg/labelsfilter's default drops pod-template-hash, statefulset pod names, kubernetes.io/*, ...
  // from the identity; app.kubernetes.io/* is kept. Labels under io.cilium.k8s are the agent's own.
  const withLabel = (extra: Record<string, string>) => {
    const objs: Obj[] = [ns('x', { ns: 'x' }), pod('x', 'a', { pod: 'a', ...extra }, { ip: '10.0.1.1' }) as Obj, pod('x', 'b', { pod: 'b' }, { ip: '10.0.1.2' }) as Obj];
    return objs;
  };
  const isolate = (key: string) => cnp('x', 'isolate', { endpointSelector: { matchLabels: { [key]: 'v1' } }, ingress: [{ fromEndpoints: [] }] }) as Obj;
  for (const [key, kept] of [
    ['pod-template-hash', false],
    ['statefulset.kubernetes.io/pod-name', false],
    ['kubernetes.io/role', false],
    ['controller-revision-hash', false],
    ['app.kubernetes.io/name', true],
    ['team', true],
  ] as const) {
    const s = memoryState(baseCluster([...withLabel({ [key]: 'v1' }), isolate(key)] as never));
    const v = evaluate(s, findPod(s, 'x/b'), { type: 'pod', pod: findPod(s, 'x/a') }, 80, 'TCP').ingress;
    t.equal(v.enforced, kept, `${key}: ${kept ? 'in the identity, the policy selects x/a' : 'dropped from the identity, nothing selected'}`);
  }
  // A pod cannot claim another service account through a label.
  const s = memoryState(baseCluster([...withLabel({ 'io.cilium.k8s.policy.serviceaccount': 'admin' }), cnp('x', 'admins', { endpointSelector: { matchLabels: { 'io.cilium.k8s.policy.serviceaccount': 'admin' } }, ingress: [{ fromEndpoints: [] }] }) as Obj] as never));
  t.equal(evaluate(s, findPod(s, 'x/b'), { type: 'pod', pod: findPod(s, 'x/a') }, 80, 'TCP').ingress.enforced, false);
});

t.test('30. an empty peer list empties its element, even beside another peer field', async (t) => {
  // mergeEndpointSelectors returns no L3 for an empty non-nil slice: `toEndpoints: []` next to
  // `toEntities: [all]` selects nobody (Sanitize only refuses two non-empty L3 kinds).
  const s = cluster([cnp('x', 'mixed', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEndpoints: [], toEntities: ['all'] }] }) as Obj]);
  const r = evaluate(s, findPod(s, 'x/a'), { type: 'pod', pod: findPod(s, 'y/b') }, 80, 'TCP');
  t.equal(r.egress.enforced, true);
  t.equal(r.egress.verdict, 'denied');
});

t.test('31. named ports: Cilium port names ignore case; ports named on init containers never match', async (t) => {
  // Rule.Sanitize lowercases a CNP's port names; GetPodMetadata takes named ports from the pod's
  // containers only. (Both checked against the agent by the conformance oracle.)
  const upper = cluster([cnp('x', 'upper', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEndpoints: [{}], toPorts: [{ ports: [{ port: 'SERVE-81-TCP', protocol: 'TCP' }] }] }] }) as Obj]);
  const xa = findPod(upper, 'x/a');
  t.equal(evaluate(upper, xa, { type: 'pod', pod: findPod(upper, 'x/b') }, 81, 'TCP').egress.verdict, 'allowed', 'SERVE-81-TCP is serve-81-tcp');
  t.equal(evaluate(upper, xa, { type: 'pod', pod: findPod(upper, 'x/b') }, 80, 'TCP').egress.verdict, 'denied');
  const withInit = pod('x', 'init', { pod: 'init' }, { ip: '10.0.1.9' }) as Obj & { spec: Record<string, unknown> };
  withInit.spec = { ...withInit.spec, initContainers: [{ name: 'setup', ports: [{ name: 'setup-port', containerPort: 9090 }] }] };
  const s = cluster([withInit, cnp('x', 'init-port', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEndpoints: [{}], toPorts: [{ ports: [{ port: 'setup-port' }] }] }] }) as Obj]);
  t.equal(evaluate(s, findPod(s, 'x/a'), { type: 'pod', pod: findPod(s, 'x/init') }, 9090, 'TCP').egress.verdict, 'denied', 'a port named on an init container is not a named port for policy');
});

t.test('32. NetworkPolicy podSelector peer: the matchLabel io.kubernetes.pod.namespace is the policy namespace', async (t) => {
  // parsePodSelector overwrites that matchLabel with the policy namespace: `from: [{podSelector:
  // {matchLabels: {io.kubernetes.pod.namespace: y}}}]` in x admits the pods of x, not y.
  const s = cluster([
    netpol('x', 'np', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ from: [{ podSelector: { matchLabels: { 'io.kubernetes.pod.namespace': 'y' } } }] }] }) as Obj,
  ]);
  const xa = findPod(s, 'x/a');
  t.equal(evaluate(s, findPod(s, 'x/b'), { type: 'pod', pod: xa }, 80, 'TCP').ingress.verdict, 'allowed', 'x/b is admitted');
  t.equal(evaluate(s, findPod(s, 'y/b'), { type: 'pod', pod: xa }, 80, 'TCP').ingress.verdict, 'denied', 'y/b is not');
});

t.test('33. allow-localhost: a deny rule still shuts the local host out; Cilium 1.20 adds it only beside ingress rules', async (t) => {
  // Pods run on node-a (192.168.0.10); a host-network pod there is the local host, node-b is a remote node.
  const agent = (tag: string) => ({
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cilium-1', namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
    spec: { hostNetwork: true, nodeName: 'node-a', containers: [{ name: 'cilium-agent', image: `quay.io/cilium/cilium:${tag}` }] }, status: { phase: 'Running' },
  }) as Obj;
  const kubelet = pod('kube-system', 'node-agent', { app: 'node-agent' }, { hostNetwork: true, ip: '192.168.0.10' }) as Obj;
  const fromHost = (s: MemoryState) => evaluate(s, findPod(s, 'kube-system/node-agent'), { type: 'pod', pod: findPod(s, 'x/a') }, 80, 'TCP').ingress;
  const fromAddress = (s: MemoryState) => evaluateIngressFromAddress(s, findPod(s, 'x/a'), '192.168.0.10', 80, 'TCP');

  const lock = cnp('x', 'lock', { endpointSelector: { matchLabels: { pod: 'a' } }, ingress: [{ fromEndpoints: [{ matchLabels: { pod: 'b' } }] }] }) as Obj;
  const locked = cluster([kubelet, lock]);
  t.equal(fromHost(locked).verdict, 'allowed', 'default deny from an ingress rule: the local host still gets in');
  t.match(fromHost(locked).reason, /allow-localhost/);
  t.equal(fromAddress(locked).verdict, 'allowed', 'the same for the node address as a source');

  const denyAll = cnp('x', 'deny-all', { endpointSelector: { matchLabels: { pod: 'a' } }, ingressDeny: [{ fromEntities: ['all'] }] }) as Obj;
  for (const tag of ['v1.18.10', 'v1.19.4', 'v1.20.2']) {
    const s = cluster([kubelet, denyAll, agent(tag)]);
    t.equal(fromHost(s).verdict, 'denied', `${tag}: a deny matching the host wins over allow-localhost`);
    t.same(fromHost(s).decidingPolicies.map((r) => r.name), ['deny-all']);
    t.equal(fromAddress(s).verdict, 'denied', `${tag}: from the node address too`);
  }
  const denyHostPort = cnp('x', 'deny-host-81', { endpointSelector: { matchLabels: { pod: 'a' } }, ingressDeny: [{ fromEntities: ['host'], toPorts: [{ ports: [{ port: '81', protocol: 'TCP' }] }] }] }) as Obj;
  t.equal(fromHost(cluster([kubelet, denyHostPort])).verdict, 'allowed', 'a deny on another port leaves port 80 alone');

  // enable-policy: always with no ingress rule on the pod: Cilium 1.20 synthesizes no localhost allow.
  const always = { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'always' };
  const egressOnly = cnp('x', 'egress-only', { endpointSelector: { matchLabels: { pod: 'a' } }, egress: [{ toEntities: ['all'] }] }) as Obj;
  t.equal(fromHost(cluster([kubelet], always)).verdict, 'denied', 'unknown version (the newest): always mode alone shuts the host out');
  t.equal(fromHost(cluster([kubelet, egressOnly, agent('v1.20.2')], always)).verdict, 'denied', '1.20: an egress rule adds no localhost allow');
  t.equal(fromHost(cluster([kubelet, lock, agent('v1.20.2')], always)).verdict, 'allowed', '1.20: beside an ingress rule the host gets in');
  t.equal(fromHost(cluster([kubelet, agent('v1.19.4')], always)).verdict, 'allowed', '1.19: every endpoint admits its host');
  t.equal(fromHost(cluster([kubelet], { ...HEALTHY_CILIUM_CONFIG, 'enable-policy': 'never' })).verdict, 'allowed', 'never: nothing is enforced');
});
