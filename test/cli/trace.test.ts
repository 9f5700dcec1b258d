// `meshguard trace` in-process: flags, exit codes, text and JSON output, --queries from snapshot files,
// and a 5,000-query run on a 100-pod snapshot (timing printed, not asserted).

import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { traceCommand } from '../../src/cli/trace.ts';
import { authzPolicy, baseCluster, cnp, netpol, ns, pod } from '../fixtures/cluster.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshguard-trace-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

type Obj = Record<string, unknown>;

/** Writes objects as a multi-document YAML snapshot. */
function snapshot(name: string, objs: Obj[]): string {
  const file = join(dir, name);
  writeFileSync(file, objs.map((o) => stringify(o, { version: '1.1' })).join('---\n'));
  return file;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function trace(args: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await traceCommand({ stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) }).parseAsync(args, { from: 'user' });
  } catch {
    // commander usage errors are thrown after exitCode is set
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { code, stdout, stderr };
}

const NS = ['x', 'y', 'z'];
const PODS = ['a', 'b', 'c'];
const servePorts = [
  { name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' },
  { name: 'serve-81-tcp', containerPort: 81, protocol: 'TCP' },
  { name: 'serve-80-udp', containerPort: 80, protocol: 'UDP' },
];
function xyz(policies: Obj[]): Obj[] {
  const objs: Obj[] = [];
  NS.forEach((n, i) => {
    objs.push(ns(n, { ns: n }));
    PODS.forEach((p, j) => objs.push(pod(n, p, { pod: p }, { ports: servePorts, ip: `10.0.${i + 1}.${j + 1}` })));
  });
  return baseCluster([...objs, ...policies] as never) as Obj[];
}

const base = snapshot(
  'base.yaml',
  xyz([
    netpol('x', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }),
    cnp('y', 'dns-only', {
      endpointSelector: { matchLabels: { pod: 'a' } },
      egress: [
        {
          toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }],
          toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], rules: { dns: [{ matchPattern: '*.example.com' }] } }],
        },
        { toFQDNs: [{ matchName: 'api.example.com' }], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] },
      ],
    }),
  ]),
);

t.test('single query: allowed, text output, exit 0', async (t) => {
  const r = await trace(['--state', base, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp']);
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.match(r.stdout, /Tracing x\/b -> x\/a on 80\/TCP/);
  t.match(r.stdout, /Ingress \(x\/a\): policy enforced, ALLOWED/);
  t.match(r.stdout, /allowed by: NetworkPolicy x\/same-ns/);
  t.match(r.stdout, /Final verdict: ALLOWED/);
});

t.test('single query: denied, JSON output, exit 1', async (t) => {
  const r = await trace(['--state', base, '--from', 'y/b', '--to', 'x/a', '--port', '81/TCP', '--output', 'json']);
  t.equal(r.code, 1);
  const j = JSON.parse(r.stdout);
  t.same(Object.keys(j), ['allowed', 'egress', 'ingress', 'versions']);
  t.same(j.versions, { cilium: 'unknown', istio: 'unknown' }, 'the fixture cluster shows no Cilium or Istio image');
  t.equal(j.allowed, false);
  t.same(j.egress, { enforced: false, verdict: 'allowed', policies: [], reason: j.egress.reason });
  t.equal(j.ingress.enforced, true);
  t.equal(j.ingress.verdict, 'denied');
  t.same(j.ingress.policies, [{ kind: 'NetworkPolicy', namespace: 'x', name: 'same-ns' }]);
  t.type(j.ingress.reason, 'string');
});

t.test('-o is --output, as in every command', async (t) => {
  const r = await trace(['--state', base, '--from', 'y/b', '--to', 'x/a', '--port', '81/TCP', '-o', 'json']);
  t.equal(r.code, 1);
  t.equal(JSON.parse(r.stdout).allowed, false);
});

t.test('versions: read from the Cilium agent pods and istiod, printed in text and JSON', async (t) => {
  const agent = (name: string, image: string): Obj => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name, namespace: 'kube-system', labels: { 'k8s-app': 'cilium' } },
    spec: { hostNetwork: true, nodeName: 'node-a', containers: [{ name: 'cilium-agent', image }] },
    status: { phase: 'Running' },
  });
  const istiod: Obj = {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: 'istiod', namespace: 'istio-system', labels: { app: 'istiod' } },
    spec: { template: { metadata: { labels: { app: 'istiod', istio: 'pilot' } }, spec: { containers: [{ name: 'discovery', image: 'docker.io/istio/pilot:1.26.2-distroless' }] } } },
  };
  const file = snapshot('versions.yaml', xyz([agent('cilium-abc', 'quay.io/cilium/cilium:v1.18.10@sha256:0123'), istiod]));
  const text = await trace(['--state', file, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp']);
  t.match(text.stdout, /^Cluster: Cilium 1\.18\.10 from pod kube-system\/cilium-abc container cilium-agent .*; Istio 1\.26\.2 from Deployment istio-system\/istiod/);
  const json = await trace(['--state', file, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp', '--output', 'json']);
  t.same(JSON.parse(json.stdout).versions, { cilium: '1.18.10', istio: '1.26.2' });
  const old = snapshot('old.yaml', xyz([agent('cilium-old', 'quay.io/cilium/cilium:v1.12.0')]));
  t.match((await trace(['--state', old, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp'])).stdout, /^Cluster: Cilium 1\.12\.0 from .* \(outside the supported 1\.14-1\.20/);
  const none = await trace(['--state', base, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp']);
  t.match(none.stdout, /^Cluster: Cilium unknown \(not in the state: newest supported behaviour assumed\); Istio unknown/);
});

t.test('mesh: ambient -> ambient on 80 answers the HBONE path (issue 18 part 5), text and JSON', async (t) => {
  // red and blue in ambient; blue/httpbin admits red only on HBONE (TCP 15008), never on port 80.
  // https://istio.io/latest/docs/ambient/architecture/data-plane/ : the HBONE tunnel runs between the pods.
  const ambient = { 'istio.io/dataplane-mode': 'ambient' };
  const hbone = cnp('blue', 'allow-hbone-from-red', {
    endpointSelector: { matchLabels: { app: 'httpbin' } },
    ingress: [{ fromEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'red' } }], toPorts: [{ ports: [{ port: '15008', protocol: 'TCP' }] }] }],
  });
  const objs = baseCluster([
    ns('red', ambient), ns('blue', ambient),
    pod('red', 'netshoot', { app: 'netshoot' }, { sa: 'netshoot', ip: '10.0.7.5' }),
    pod('blue', 'httpbin', { app: 'httpbin' }, { sa: 'httpbin', ports: [{ containerPort: 80 }], ip: '10.0.8.5' }),
    hbone,
  ] as never) as Obj[];
  const file = snapshot('ambient.yaml', objs);
  const text = await trace(['--state', file, '--from', 'red/netshoot', '--to', 'blue/httpbin', '--port', '80/tcp']);
  t.equal(text.code, 0, 'the real path is allowed');
  t.match(text.stdout, /Application port \(Cilium's verdict on 80\/TCP, as a path outside the mesh would get it\): DENIED/);
  t.match(text.stdout, /Mesh path \(ambient -> ambient\): HBONE \(TCP 15008\)/);
  t.match(text.stdout, /Wire red\/netshoot 10\.0\.7\.5 -> blue\/httpbin 10\.0\.8\.5 on 15008\/TCP \(hbone\): Cilium ALLOWED/);
  t.match(text.stdout, /Istio at ztunnel blue\/httpbin \(peer cluster\.local\/ns\/red\/sa\/netshoot\): ALLOWED/);
  t.match(text.stdout, /Final verdict: ALLOWED \(the mesh path\)/);

  const json = JSON.parse((await trace(['--state', file, '--from', 'red/netshoot', '--to', 'blue/httpbin', '--port', '80/tcp', '-o', 'json'])).stdout);
  t.same(Object.keys(json), ['allowed', 'egress', 'ingress', 'mesh', 'versions'], 'mesh is added; the others keep their meaning');
  t.equal(json.allowed, false, 'allowed: still Cilium on the application port');
  t.equal(json.ingress.verdict, 'denied');
  t.same(
    [json.mesh.allowed, json.mesh.decidedBy, json.mesh.source, json.mesh.destination, json.mesh.wire, json.mesh.appPort],
    [true, 'none', 'ambient', 'ambient', 'hbone', 80],
  );
  t.same(json.mesh.hops.map((h: Record<string, unknown>) => [h.fromIp, h.toIp, h.port, h.protocol, h.kind, h.allowed]), [['10.0.7.5', '10.0.8.5', 15008, 'TCP', 'hbone', true]]);
  t.same(json.mesh.hops[0].ingress.policies, [{ kind: 'CiliumNetworkPolicy', namespace: 'blue', name: 'allow-hbone-from-red' }]);
  t.same(json.mesh.istio.map((d: Record<string, unknown>) => [d.enforcer, d.at, d.principal, d.verdict]), [['ztunnel', 'blue/httpbin', 'cluster.local/ns/red/sa/netshoot', 'allowed']]);

  // An AuthorizationPolicy DENY at ztunnel: Cilium allows HBONE, Istio denies; exit 1.
  const denyFile = snapshot('ambient-deny.yaml', [...objs, authzPolicy('blue', 'deny-red', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['red'] } }] }] })]);
  const denied = await trace(['--state', denyFile, '--from', 'red/netshoot', '--to', 'blue/httpbin', '--port', '80/tcp']);
  t.equal(denied.code, 1);
  t.match(denied.stdout, /Decided: Cilium allows HBONE 15008; AuthorizationPolicy blue\/deny-red denies at ztunnel: DENIED by Istio/);
  t.match(denied.stdout, /Final verdict: DENIED by Istio \(the mesh path\)/);
});

t.test('mesh: pods outside the mesh keep the old output (no mesh member, no mesh lines)', async (t) => {
  const r = await trace(['--state', base, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp', '-o', 'json']);
  t.notOk('mesh' in JSON.parse(r.stdout));
  const text = await trace(['--state', base, '--from', 'x/b', '--to', 'x/a', '--port', '80/tcp']);
  t.notMatch(text.stdout, /Mesh path|Application port/);
});

t.test('targets: entity, cidr, fqdn; protocol case-insensitive', async (t) => {
  const world = await trace(['--state', base, '--from', 'y/a', '--to', 'entity:world', '--port', '443/tcp', '--output', 'json']);
  t.equal(world.code, 1, 'y/a egress only allows DNS and one FQDN');
  t.equal(JSON.parse(world.stdout).ingress.enforced, false, 'no ingress side for an entity');
  const fq = await trace(['--state', base, '--from', 'y/a', '--to', 'fqdn:api.example.com', '--port', '443/Tcp', '--output', 'json']);
  t.equal(fq.code, 0, 'toFQDNs + DNS visibility through rules.dns');
  t.same(JSON.parse(fq.stdout).egress.policies, [{ kind: 'CiliumNetworkPolicy', namespace: 'y', name: 'dns-only' }]);
  const other = await trace(['--state', base, '--from', 'y/a', '--to', 'fqdn:www.example.com', '--port', '443/tcp']);
  t.equal(other.code, 1, 'visible to the DNS proxy but not in toFQDNs');
  const dns = await trace(['--state', base, '--from', 'y/a', '--to', 'kube-system/coredns-1', '--port', '53/UDP']);
  t.equal(dns.code, 0);
  const ip = await trace(['--state', base, '--from', 'x/a', '--to', 'cidr:8.8.8.8', '--port', '53/udp']);
  t.equal(ip.code, 0);
  t.match(ip.stdout, /world 8\.8\.8\.8/);
  const sctp = await trace(['--state', base, '--from', 'z/a', '--to', 'z/b', '--port', '80/SCTP']);
  t.equal(sctp.code, 0);
});

t.test('usage and input errors: exit 2, one line on stderr, nothing on stdout', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['unknown pod', ['--state', base, '--from', 'x/nope', '--to', 'x/a', '--port', '80/tcp'], /unknown pod x\/nope/],
    ['unknown target pod', ['--state', base, '--from', 'x/a', '--to', 'q/a', '--port', '80/tcp'], /unknown pod q\/a/],
    ['bad target', ['--state', base, '--from', 'x/a', '--to', 'nothing', '--port', '80/tcp'], /--to: expected/],
    ['bad cidr', ['--state', base, '--from', 'x/a', '--to', 'cidr:10.0.0.0/8', '--port', '80/tcp'], /one IP address/],
    ['bad entity', ['--state', base, '--from', 'x/a', '--to', 'entity:cluster', '--port', '80/tcp'], /entity/],
    ['bad fqdn', ['--state', base, '--from', 'x/a', '--to', 'fqdn:-bad..name', '--port', '80/tcp'], /DNS name/],
    ['bad port', ['--state', base, '--from', 'x/a', '--to', 'x/b', '--port', '70000/tcp'], /port must be 1-65535/],
    ['no proto', ['--state', base, '--from', 'x/a', '--to', 'x/b', '--port', '80'], /PORT\/PROTO/],
    ['bad proto', ['--state', base, '--from', 'x/a', '--to', 'x/b', '--port', '80/icmp'], /tcp, udp or sctp/],
    ['missing --to', ['--state', base, '--from', 'x/a', '--port', '80/tcp'], /required/],
    ['no --state', ['--from', 'x/a', '--to', 'x/b', '--port', '80/tcp'], /--state/],
    ['bad output', ['--state', base, '--from', 'x/a', '--to', 'x/b', '--port', '80/tcp', '--output', 'yaml'], /text or json/],
    ['unknown flag', ['--state', base, '--frm', 'x/a'], /unknown option/],
    ['missing file', ['--state', join(dir, 'absent.yaml'), '--from', 'x/a', '--to', 'x/b', '--port', '80/tcp'], /absent\.yaml/],
    ['both modes', ['--state', base, '--from', 'x/a', '--queries', join(dir, 'q.json')], /either --queries/],
  ];
  for (const [name, args, re] of cases) {
    const r = await trace(args);
    t.equal(r.code, 2, `${name}: exit 2`);
    t.equal(r.stdout, '', `${name}: nothing on stdout`);
    t.match(r.stderr, re, `${name}: reason`);
    t.equal(r.stderr.trimEnd().split('\n').length, 1, `${name}: one line`);
  }
});

t.test('--queries: bad JSON and bad entries are input errors with the file name', async (t) => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '[{"from": "x/a", ');
  let r = await trace(['--state', base, '--queries', bad]);
  t.equal(r.code, 2);
  t.match(r.stderr, /bad\.json: invalid JSON/);
  t.match(r.stderr, /^meshguard: [^\n]*\n$/, "one line with the same prefix as the other commands");
  const notArray = join(dir, 'obj.json');
  writeFileSync(notArray, '{"from":"x/a"}');
  r = await trace(['--state', base, '--queries', notArray]);
  t.equal(r.code, 2);
  t.match(r.stderr, /JSON array/);
  const badEntry = join(dir, 'entry.json');
  writeFileSync(badEntry, JSON.stringify([{ from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP' }, { from: 'x/a', to: 'x/zz', port: 80, protocol: 'TCP' }]));
  r = await trace(['--state', base, '--queries', badEntry]);
  t.equal(r.code, 2);
  t.equal(r.stdout, '', 'no partial output');
  t.match(r.stderr, /entry\.json: query 2: --to: unknown pod x\/zz/);
  const badPort = join(dir, 'port.json');
  writeFileSync(badPort, JSON.stringify([{ from: 'x/a', to: 'x/b', port: 0, protocol: 'TCP' }]));
  r = await trace(['--state', base, '--queries', badPort]);
  t.equal(r.code, 2);
  t.match(r.stderr, /query 1: port must be/);
});

t.test('--queries answers the same-namespace truth table from a snapshot, in order', async (t) => {
  const queries = [];
  for (const fn of NS) for (const fp of PODS) for (const tn of NS) for (const tp of PODS) {
    queries.push({ from: `${fn}/${fp}`, to: `${tn}/${tp}`, port: 80, protocol: 'TCP' });
  }
  const file = join(dir, 'matrix.json');
  writeFileSync(file, JSON.stringify(queries));
  const r = await trace(['--state', base, '--queries', file, '--output', 'json']);
  t.equal(r.code, 1, 'some denied');
  const answers = JSON.parse(r.stdout) as { allowed: boolean }[];
  t.equal(answers.length, 81);
  const rows: string[] = [];
  for (let i = 0; i < 9; i++) {
    const cells = answers.slice(i * 9, i * 9 + 9).map((a) => (a.allowed ? '.' : 'X')).join('');
    rows.push(`${cells.slice(0, 3)} ${cells.slice(3, 6)} ${cells.slice(6)}`);
  }
  t.same(rows, [
    '... ... ...',
    '... ... ...',
    '... ... ...',
    // y/a egress is limited to DNS (and one FQDN): it reaches no pod on 80/TCP.
    'XXX .XX XXX',
    'XXX ... ...',
    'XXX ... ...',
    'XXX ... ...',
    'XXX ... ...',
    'XXX ... ...',
  ]);
  const text = await trace(['--state', base, '--queries', file]);
  t.equal(text.stdout.split('Final verdict').length - 1, 81, 'one text block per query');
});

t.test('perf: 5,000 queries on a 100-pod snapshot (printed, not asserted)', async (t) => {
  const objs: Obj[] = [];
  const namespaces = Array.from({ length: 10 }, (_, i) => `team-${i}`);
  for (const [i, n] of namespaces.entries()) {
    objs.push(ns(n, { team: String(i % 3) }));
    for (let j = 0; j < 10; j++) {
      objs.push(pod(n, `p${j}`, { app: `app-${j % 4}`, tier: j % 2 ? 'fe' : 'be' }, { ports: servePorts, ip: `10.${i + 1}.0.${j + 1}` }));
    }
    objs.push(netpol(n, 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }));
    objs.push(cnp(n, 'fe-egress', {
      endpointSelector: { matchLabels: { tier: 'fe' } },
      egress: [
        { toEndpoints: [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }], toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }], rules: { dns: [{ matchPattern: '*' }] } }] },
        { toEndpoints: [{ matchLabels: { tier: 'be' } }], toPorts: [{ ports: [{ port: 'serve-80-tcp' }] }] },
        { toEntities: ['kube-apiserver'] },
      ],
    }));
  }
  const file = snapshot('big.yaml', baseCluster(objs as never) as Obj[]);
  const queries = [];
  let k = 0;
  const targets = ['entity:kube-apiserver', 'cidr:8.8.8.8', 'fqdn:example.org'];
  for (let q = 0; q < 5000; q++) {
    const a = namespaces[q % 10]!;
    const b = namespaces[(q * 7) % 10]!;
    const to = q % 5 === 4 ? targets[q % 3]! : `${b}/p${(q * 3) % 10}`;
    queries.push({ from: `${a}/p${k++ % 10}`, to, port: q % 3 === 0 ? 81 : 80, protocol: q % 4 === 0 ? 'UDP' : 'TCP' });
  }
  const qfile = join(dir, 'perf.json');
  writeFileSync(qfile, JSON.stringify(queries));
  const start = performance.now();
  const r = await trace(['--state', file, '--queries', qfile, '--output', 'json']);
  const ms = performance.now() - start;
  t.comment(`5,000 queries on 100 pods (+ snapshot load): ${ms.toFixed(0)} ms`);
  t.equal(r.stderr, '');
  t.equal((JSON.parse(r.stdout) as unknown[]).length, 5000);
});
