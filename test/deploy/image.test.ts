// The deploy manifests a new user installs: the documented image override works on every overlay, the
// image is pinned and shell-less, and the hardening Kyverno's and Gatekeeper's charts ship is here
// (Pod Security labels, a priority class, zone spread, an optional ServiceMonitor).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

import { anyKubectl, REPO_ROOT } from '../helpers/kube-bins.ts';

const kubectl = anyKubectl();
const OVERLAYS = ['enforce', 'audit', 'host-network', 'client-auth'] as const;
type Doc = { kind?: string; metadata?: { name?: string; labels?: Record<string, string> }; spec?: Record<string, unknown> } & Record<string, unknown>;

function render(dir: string): Doc[] {
  return parseAllDocuments(execFileSync(kubectl!, ['kustomize', dir], { encoding: 'utf8' })).map((d) => d.toJS() as Doc);
}

/** A user's overlay on top of one of ours, in a copy of deploy/ (kustomize refuses absolute paths). */
function userOverlay(base: string, body: string): string {
  const root = mkdtempSync(join(tmpdir(), 'meshguard-overlay-'));
  cpSync(join(REPO_ROOT, 'deploy'), join(root, 'deploy'), { recursive: true });
  mkdirSync(join(root, 'mine'));
  writeFileSync(join(root, 'mine', 'kustomization.yaml'), `resources: [../deploy/overlays/${base}]\n${body}`);
  return join(root, 'mine');
}

const image = (docs: Doc[]): string | undefined =>
  ((docs.find((d) => d.kind === 'Deployment')?.spec as { template: { spec: { containers: { image: string }[] } } } | undefined)?.template.spec.containers[0]?.image);

t.test('the image override a user writes reaches the Deployment, on every overlay', { skip: !kubectl && 'no kubectl' }, async (t) => {
  for (const o of OVERLAYS) {
    t.equal(image(render(join(REPO_ROOT, 'deploy', 'overlays', o))), 'meshguard', `${o}: the bare name, renamed nowhere`);
    const mine = userOverlay(o, 'images:\n  - name: meshguard\n    newName: registry.example/team/meshguard\n    newTag: "1.2.3"\n');
    t.equal(image(render(mine)), 'registry.example/team/meshguard:1.2.3', `${o}: kustomize edit set image meshguard=... works`);
  }
});

t.test('hardening: Pod Security labels, priority class, zone spread', { skip: !kubectl && 'no kubectl' }, async (t) => {
  for (const o of OVERLAYS) {
    const docs = render(join(REPO_ROOT, 'deploy', 'overlays', o));
    const ns = docs.find((d) => d.kind === 'Namespace' && d.metadata?.name === 'meshguard')!;
    const level = o === 'host-network' ? 'privileged' : 'restricted';
    for (const mode of ['enforce', 'audit', 'warn']) t.equal(ns.metadata?.labels?.[`pod-security.kubernetes.io/${mode}`], level, `${o}: ${mode}=${level}`);
    const pod = (docs.find((d) => d.kind === 'Deployment')!.spec as { template: { spec: Record<string, unknown> } }).template.spec;
    t.equal(pod.priorityClassName, 'meshguard-webhook', `${o}: priority class`);
    t.ok(docs.some((d) => d.kind === 'PriorityClass' && d.metadata?.name === 'meshguard-webhook' && (d as { value?: number }).value! < 1_000_000_000), `${o}: the class ships, below the system classes`);
    t.match(pod.topologySpreadConstraints, [{ topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'meshguard' } } }], `${o}: spread over zones, never blocking`);
  }
});

t.test('the optional ServiceMonitor scrapes the metrics Service by its label and port name', { skip: !kubectl && 'no kubectl' }, async (t) => {
  const docs = render(userOverlay('enforce', 'components: [../deploy/components/servicemonitor]\n'));
  const sm = docs.find((d) => d.kind === 'ServiceMonitor')! as unknown as { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } };
  const svc = docs.find((d) => d.kind === 'Service' && d.metadata?.name === 'meshguard-metrics')! as unknown as { metadata: { labels: Record<string, string> }; spec: { ports: { name: string }[] } };
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) t.equal(svc.metadata.labels[k], v, `selects ${k}=${v}`);
  t.ok(svc.spec.ports.some((p) => p.name === sm.spec.endpoints[0]!.port), 'the named port exists');
  t.notOk(render(join(REPO_ROOT, 'deploy', 'overlays', 'enforce')).some((d) => d.kind === 'ServiceMonitor'), 'not in the default install');
});

t.test('Dockerfile: bases pinned by digest, a runtime stage without shell or package manager', async (t) => {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const args = new Map([...text.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const froms = [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!.replace(/^\$\{(\w+)\}$/, (_, a: string) => args.get(a) ?? a));
  t.ok(froms.length >= 2);
  for (const f of froms) t.match(f, /@sha256:[0-9a-f]{64}$/, `${f} pinned`);
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  t.match(froms[froms.length - 1], /^gcr\.io\/distroless\/nodejs24-debian12@/, 'distroless Node.js 24');
  t.notMatch(runtime, /^RUN /m, 'nothing runs in the runtime stage (it has no shell)');
  t.match(runtime, /^USER 10001:10001$/m);
  t.match(runtime, /^ENTRYPOINT \["\/nodejs\/bin\/node", "bin\/meshguard\.js"\]$/m, 'exec form, distroless node');
});

type Container = { env?: { name: string; value?: string }[]; lifecycle?: Record<string, Record<string, unknown>>; readinessProbe?: Record<string, unknown>; livenessProbe?: Record<string, unknown>; startupProbe?: Record<string, unknown> };
const containers = (docs: Doc[]): Container[] =>
  (docs.find((d) => d.kind === 'Deployment')!.spec as { template: { spec: { containers: Container[] } } }).template.spec.containers;

t.test('no hook or probe runs a command: the distroless image has no shell and no sleep binary', { skip: !kubectl && 'no kubectl' }, async (t) => {
  for (const o of OVERLAYS) {
    for (const c of containers(render(join(REPO_ROOT, 'deploy', 'overlays', o)))) {
      for (const [name, hook] of Object.entries(c.lifecycle ?? {})) t.notOk('exec' in hook, `${o}: ${name} is not an exec hook`);
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) if (probe) t.notOk('exec' in probe, `${o}: no exec probe`);
    }
    t.same(containers(render(join(REPO_ROOT, 'deploy', 'overlays', o)))[0]!.lifecycle?.['preStop'], { sleep: { seconds: 5 } }, `${o}: preStop is the kubelet's own 5 s sleep`);
  }
});

t.test("glibc's malloc tunable: the Deployment and the image's default environment set the same one", { skip: !kubectl && 'no kubectl' }, async (t) => {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const runtime = text.slice(text.lastIndexOf('\nFROM '));
  const image = /^ENV GLIBC_TUNABLES=(\S+)$/m.exec(runtime)?.[1];
  t.match(image, /(^|:)glibc\.malloc\.mmap_threshold=32768($|:)/, 'the image: blocks of 32 KiB and more mapped on their own');
  for (const o of OVERLAYS) {
    const env = containers(render(join(REPO_ROOT, 'deploy', 'overlays', o)))[0]!.env ?? [];
    t.equal(env.find((e) => e.name === 'GLIBC_TUNABLES')?.value, image, `${o}: the same value as the image's`);
  }
});
