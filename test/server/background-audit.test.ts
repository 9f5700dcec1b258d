// The background audit of `serve`, on a fake clock and fake timers: it audits once the state has
// synced, again after a change once the state has been quiet for the debounce time (or after the
// longest delay however busy), works in slices with pauses that bound its CPU share, exports the
// gauge, and writes reports only on the replica holding the lease.

import { pino } from 'pino';
import t from 'tap';

import { defaultConfig } from '../../src/config/config.ts';
import { Lease } from '../../src/reports/lease.ts';
import { reportPath } from '../../src/reports/reports.ts';
import { ReportWriter } from '../../src/reports/writer.ts';
import { allRules } from '../../src/rules/registry.ts';
import { BackgroundAudit, type AuditTimers as Timers } from '../../src/server/background-audit.ts';
import { auditSubjects } from '../../src/verdict/audit.ts';
import { createMetrics } from '../../src/server/metrics.ts';
import { readManifests } from '../../src/state/io/manifests.ts';
import { loadSnapshot } from '../../src/state/snapshot.ts';
import { transformObject } from '../../src/state/transform.ts';
import type { StateSource } from '../../src/core/objects.ts';
import { createDecide } from '../../src/verdict/decide.ts';
import { FakeKube } from '../reports/fake-kube.ts';

const root = new URL('../../', import.meta.url).pathname;
const rules = allRules();
const config = defaultConfig(rules);
const silent = pino({ level: 'silent' });
const badPolicy = readManifests([`${root}examples/policies/dns-egress-missing.bad.yaml`])[0]!.object;
const goodPolicy = readManifests([`${root}examples/policies/dns-egress-missing.good.yaml`])[0]!.object;

/** Timers that fire only when the test says, and a clock the test moves. */
function fakeTime() {
  let now = 0;
  const queue: { at: number; fn: () => void; id: object }[] = [];
  const timers: Timers = {
    setTimeout(fn, ms) {
      const id = { refresh: () => id, unref: () => id };
      queue.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout(h) {
      const i = queue.findIndex((q) => q.id === h);
      if (i >= 0) queue.splice(i, 1);
    },
  };
  const clock = { now: () => now };
  /** Moves time forward by `ms`, firing every timer due, in order, with microtasks run in between. */
  async function advance(ms: number): Promise<void> {
    const end = now + ms;
    for (;;) {
      await new Promise((r) => setImmediate(r));
      queue.sort((a, b) => a.at - b.at);
      const next = queue[0];
      if (!next || next.at > end) break;
      queue.shift();
      now = Math.max(now, next.at);
      next.fn();
    }
    now = end;
    await new Promise((r) => setImmediate(r));
  }
  return { timers, clock, advance, pending: () => queue.map((q) => q.at - now), tick: (ms: number) => void (now += ms) };
}

function source(synced = true) {
  const state = loadSnapshot([`${root}examples/cluster`]);
  state.upsert('NetworkPolicy', transformObject('NetworkPolicy', badPolicy));
  let isSynced = synced;
  const s: StateSource & { readonly state: typeof state; setSynced(v: boolean): void } = {
    state,
    async start() {},
    async stop() {},
    synced: () => isSynced,
    stats: () => ({ objects: {}, synced: isSynced }),
    setSynced: (v) => void (isSynced = v),
  };
  return s;
}

async function gauge(metrics: ReturnType<typeof createMetrics>): Promise<string[]> {
  return (await metrics.render()).split('\n').filter((l) => l.startsWith('meshguard_existing_findings{'));
}

t.test('audits once synced, exports the gauge, re-audits after a quiet change, and the gauge goes to 0 when fixed', async (t) => {
  const time = fakeTime();
  const src = source(false);
  const metrics = createMetrics({ processMetrics: false });
  const audit = new BackgroundAudit({ source: src, rules, config, decide: createDecide(rules, config), logger: silent, metrics, timers: time.timers, clock: time.clock, debounceMs: 10_000, maxDelayMs: 60_000 });
  audit.start();
  await time.advance(5_000);
  t.equal(audit.last, undefined, 'nothing before the state has synced');
  src.setSynced(true);
  await time.advance(1_000);
  await time.advance(10_000);
  t.ok(audit.last, 'audited once synced');
  t.same(await gauge(metrics), ['meshguard_existing_findings{rule="dns-egress-missing",action="deny"} 1']);

  // Fix the policy: the change is seen, but the audit waits for 10 s of quiet.
  src.state.upsert('NetworkPolicy', transformObject('NetworkPolicy', goodPolicy));
  const before = audit.last;
  await time.advance(9_000);
  t.equal(audit.last, before, 'not yet: the debounce time has not passed (near miss)');
  await time.advance(3_000);
  t.not(audit.last, before, 'audited after 10 s without a change');
  t.same(await gauge(metrics), ['meshguard_existing_findings{rule="dns-egress-missing",action="deny"} 0'], 'the fixed problem reads 0');
  await audit.stop();
});

t.test('a state that never stops changing is audited after the longest delay', async (t) => {
  const time = fakeTime();
  const src = source();
  const metrics = createMetrics({ processMetrics: false });
  const audit = new BackgroundAudit({ source: src, rules, config, decide: createDecide(rules, config), logger: silent, metrics, timers: time.timers, clock: time.clock, debounceMs: 10_000, maxDelayMs: 30_000 });
  audit.start();
  await time.advance(2_000);
  const first = audit.last;
  t.ok(first);
  let audits = 0;
  let last = first;
  for (let s = 0; s < 45; s++) {
    // A change every second: never 10 s of quiet.
    src.state.upsert('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: `churn-${s}` } });
    await time.advance(1_000);
    if (audit.last !== last) {
      audits++;
      last = audit.last;
    }
  }
  t.equal(audits, 1, 'one audit in 45 s of churn: at the 30 s longest delay');
  await audit.stop();
});

t.test('slices and pauses bound the CPU share', async (t) => {
  const time = fakeTime();
  const src = source();
  const metrics = createMetrics({ processMetrics: false });
  const decide = createDecide(rules, config);
  // Each object costs 7 ms of the fake clock.
  const slow: typeof decide = (c, s) => {
    time.tick(7);
    return decide(c, s);
  };
  let yields = 0;
  const pauses: number[] = [];
  const timers: Timers = { setTimeout: (fn, ms) => (pauses.push(ms), time.timers.setTimeout(fn, ms)), clearTimeout: time.timers.clearTimeout };
  const audit = new BackgroundAudit({
    source: src, rules, config, decide: slow, logger: silent, metrics, timers, clock: time.clock, sliceMs: 20, cpuShare: 0.25,
    yieldMs: 10, yieldNow: async () => void yields++,
  });
  const run = audit.runNow();
  for (let i = 0; i < 200 && audit.last === undefined; i++) await time.advance(1_000);
  const r = await run;
  t.ok(r);
  const objects = r!.objects;
  t.ok(objects > 10, `${objects} objects`);
  // 20 ms slices of 7 ms objects: 3 objects a slice (21 ms, the last object overruns), then a pause
  // three times as long (share 0.25): 63 ms.
  t.equal(r!.slices, Math.ceil(objects / 3));
  t.ok(pauses.length > 0 && pauses.every((p) => p === 63), `pauses of 63 ms (${[...new Set(pauses)].join(', ')})`);
  t.ok(r!.ms >= objects * 7 + (r!.slices - 1) * 63, 'wall time includes the pauses');
  const share = (objects * 7) / r!.ms;
  // Inside each 3-object slice (7, 14, 21 ms) the event loop turns once, after the second object
  // (14 ms >= the 10 ms yield interval); the third ends the slice with its pause.
  const full = Math.floor(objects / 3);
  t.equal(yields, full + (objects % 3 === 2 ? 1 : 0), `the event loop turned inside every slice (${yields} turns, ${objects} objects)`);
  // Every slice but the last is followed by a pause three times its length.
  t.ok(share <= (0.25 * r!.slices) / (r!.slices - 1) + 1e-9, `CPU share ${share.toFixed(3)}: 0.25 but for the last slice`);
  await audit.stop();
});

t.test('only the lease holder audits and writes reports; stop gives the lease up', async (t) => {
  const time = fakeTime();
  const src = source();
  const api = new FakeKube();
  const wall = { now: () => time.clock.now(), wall: () => Date.parse('2026-12-06T10:00:00Z') + time.clock.now() };
  // Another replica holds the lease.
  const other = new Lease({ api, namespace: 'meshguard', name: 'meshguard-audit', identity: 'pod-other', clock: wall });
  t.equal(await other.tryAcquireOrRenew(), true);
  const metrics = createMetrics({ processMetrics: false });
  const lease = new Lease({ api, namespace: 'meshguard', name: 'meshguard-audit', identity: 'pod-me', clock: wall });
  const audit = new BackgroundAudit({
    source: src, rules, config, decide: createDecide(rules, config), logger: silent, metrics, timers: time.timers, clock: time.clock,
    writer: new ReportWriter(api, silent), lease, renewMs: 10_000, now: () => new Date(wall.wall()),
  });
  audit.start();
  await time.advance(20_000);
  t.equal(audit.last, undefined, 'not the holder: no audit');
  t.notOk([...api.objects.keys()].some((k) => k.includes('/reports/')), 'no report written');
  t.match(await metrics.render(), /meshguard_audit_report_writer 0/);
  await time.advance(20_000); // the other replica stopped renewing 40 s ago: its lease expired
  t.ok(lease.held, 'took the expired lease');
  t.ok(audit.last, 'and audited');
  t.ok(api.objects.has(reportPath('Report', 'green', 'meshguard-networkpolicy-netshoot-egress')), 'report written');
  t.match(await metrics.render(), /meshguard_audit_report_writer 1/);
  await audit.stop();
  t.notOk(lease.held, 'released on stop');
  t.equal(await other.tryAcquireOrRenew(), true, 'the other replica takes it at once');
});

t.test('a replica that loses the lease stops exporting the finding counts (sum() over replicas stays right)', async (t) => {
  const time = fakeTime();
  const api = new FakeKube();
  const wall = { now: () => time.clock.now(), wall: () => Date.parse('2026-12-06T10:00:00Z') + time.clock.now() };
  const metrics = createMetrics({ processMetrics: false });
  const lease = new Lease({ api, namespace: 'meshguard', name: 'meshguard-audit', identity: 'pod-me', clock: wall });
  const audit = new BackgroundAudit({
    source: source(), rules, config, decide: createDecide(rules, config), logger: silent, metrics, timers: time.timers, clock: time.clock,
    writer: new ReportWriter(api, silent), lease, renewMs: 10_000, now: () => new Date(wall.wall()),
  });
  audit.start();
  await time.advance(20_000);
  t.ok(lease.held, 'holds the lease');
  t.match(await metrics.render(), /meshguard_existing_findings\{rule="dns-egress-missing",action="deny"\} [1-9]/, 'the holder exports the counts');
  // Another replica takes the lease over (the object is replaced under this one).
  api.objects.delete('/apis/coordination.k8s.io/v1/namespaces/meshguard/leases/meshguard-audit');
  const other = new Lease({ api, namespace: 'meshguard', name: 'meshguard-audit', identity: 'pod-other', clock: wall });
  t.equal(await other.tryAcquireOrRenew(), true);
  await time.advance(10_000);
  t.notOk(lease.held, 'lost the lease');
  t.match(await metrics.render(), /meshguard_existing_findings\{rule="dns-egress-missing",action="deny"\} 0\b/, 'its counts read 0');
  await audit.stop();
});

t.test('a costly object is re-evaluated only when it changes or after the heavy interval', async (t) => {
  const time = fakeTime();
  const src = source();
  const metrics = createMetrics({ processMetrics: false });
  const decide = createDecide(rules, config);
  const evaluated: string[] = [];
  // The broken NetworkPolicy costs 80 ms of the fake clock to evaluate; everything else nothing.
  const costly: typeof decide = (c, s) => {
    if (c.name === 'netshoot-egress') {
      evaluated.push(c.name);
      time.tick(80);
    }
    return decide(c, s);
  };
  const audit = new BackgroundAudit({ source: src, rules, config, decide: costly, logger: silent, metrics, timers: time.timers, clock: time.clock, heavyMs: 50, heavyIntervalMs: 600_000, yieldNow: async () => undefined });
  const drain = async <T,>(p: Promise<T>): Promise<T> => {
    let done = false;
    void p.then(() => (done = true));
    for (let i = 0; i < 100 && !done; i++) await time.advance(1_000);
    return p;
  };
  const first = (await drain(audit.runNow()))!;
  t.equal(evaluated.length, 1);
  t.equal(first.reused, 0);
  // Another object changes: the costly one is not evaluated again, its findings stand.
  src.state.upsert('Namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'unrelated' } });
  const second = (await drain(audit.runNow()))!;
  t.equal(evaluated.length, 1, 'not re-evaluated');
  t.equal(second.reused, 1);
  t.ok(second.results.some((r) => r.name === 'netshoot-egress' && r.findings.some((f) => f.rule === 'dns-egress-missing')), 'its findings stand');
  // The object itself changes: evaluated again (near miss: same name, new object).
  src.state.upsert('NetworkPolicy', transformObject('NetworkPolicy', { ...badPolicy, metadata: { ...(badPolicy.metadata as object), labels: { touched: 'yes' } } }));
  await drain(audit.runNow());
  t.equal(evaluated.length, 2, 're-evaluated after its own change');
  // Unchanged, but the interval has passed: evaluated again.
  await time.advance(600_000);
  await drain(audit.runNow());
  t.equal(evaluated.length, 3, 're-evaluated after the interval');
  await audit.stop();
});

t.test('while the webhook answers reviews, costly objects wait for a quiet moment, or for the longest wait', async (t) => {
  const time = fakeTime();
  const src = source();
  const wide = { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'wide' }, spec: { endpointSelector: {}, egress: [{ toEntities: ['world'] }] } };
  src.state.upsert('CiliumClusterwideNetworkPolicy', transformObject('CiliumClusterwideNetworkPolicy', wide));
  const metrics = createMetrics({ processMetrics: false });
  const decide = createDecide(rules, config);
  const order: string[] = [];
  // The broken NetworkPolicy costs 80 ms of the fake clock; everything else nothing.
  const recorded: typeof decide = (c, s) => {
    order.push(c.name);
    if (c.name === 'netshoot-egress') time.tick(80);
    return decide(c, s);
  };
  let busy = true;
  const audit = new BackgroundAudit({
    source: src, rules, config, decide: recorded, logger: silent, metrics, timers: time.timers, clock: time.clock,
    heavyMs: 50, webhookBusy: () => busy, quietWaitMs: 60_000, quietPollMs: 250, yieldNow: async () => undefined,
  });
  // First run, busy: the cluster-wide policy (cost not known yet) waits; the namespaced one does not.
  let done = false;
  const first = audit.runNow();
  void first.then(() => (done = true));
  await time.advance(5_000);
  t.notOk(order.includes('wide'), 'a cluster-wide policy waits while the webhook is busy');
  t.ok(order.includes('netshoot-egress'), 'near miss: a namespaced object of unknown cost is evaluated at once');
  t.notOk(done, 'the run waits with it');
  busy = false;
  await time.advance(1_000);
  const run1 = (await first)!;
  t.ok(order.includes('wide'), 'evaluated at the first quiet moment');
  t.ok(run1.results.some((r) => r.name === 'wide'), 'and reported');

  // Second run: the NetworkPolicy changed and is known to be costly (80 ms > 50): it waits; the CCNP cost nothing last time and does not.
  src.state.upsert('NetworkPolicy', transformObject('NetworkPolicy', { ...badPolicy, metadata: { ...(badPolicy.metadata as object), labels: { touched: 'yes' } } }));
  src.state.upsert('CiliumClusterwideNetworkPolicy', transformObject('CiliumClusterwideNetworkPolicy', { ...wide, metadata: { name: 'wide', labels: { v: '2' } } }));
  order.length = 0;
  busy = true;
  const second = audit.runNow();
  await time.advance(5_000);
  t.notOk(order.includes('netshoot-egress'), 'a costly object waits while busy');
  t.ok(order.includes('wide'), 'near miss: a cluster-wide object that cost little last time is not put off');
  await time.advance(60_000);
  t.ok(order.includes('netshoot-egress'), 'busy all along: evaluated once the longest wait is over');
  const run2 = (await second)!;
  t.ok(run2.results.some((r) => r.name === 'netshoot-egress' && r.findings.some((f) => f.rule === 'dns-egress-missing')), 'with its findings');

  // The cluster-wide policy goes, then comes back under the same name: its cost is not known any more.
  src.state.remove('CiliumClusterwideNetworkPolicy', undefined, 'wide');
  busy = false;
  const third = audit.runNow();
  await time.advance(5_000);
  await third;
  src.state.upsert('CiliumClusterwideNetworkPolicy', transformObject('CiliumClusterwideNetworkPolicy', wide));
  order.length = 0;
  busy = true;
  const fourth = audit.runNow();
  await time.advance(5_000);
  t.notOk(order.includes('wide'), 'a cluster-wide policy created again is presumed costly again and waits');
  busy = false;
  await time.advance(1_000);
  await fourth;
  await audit.stop();
});

t.test('near miss: with the webhook quiet, nothing is put off and the order is the list order', async (t) => {
  const time = fakeTime();
  const src = source();
  src.state.upsert('CiliumClusterwideNetworkPolicy', transformObject('CiliumClusterwideNetworkPolicy', { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: 'wide' }, spec: { endpointSelector: {}, egress: [{ toEntities: ['world'] }] } }));
  const decide = createDecide(rules, config);
  const order: string[] = [];
  const recorded: typeof decide = (c, s) => (order.push(`${c.kind}/${c.name}`), decide(c, s));
  const audit = new BackgroundAudit({ source: src, rules, config, decide: recorded, logger: silent, metrics: createMetrics({ processMetrics: false }), timers: time.timers, clock: time.clock, webhookBusy: () => false, yieldNow: async () => undefined });
  const p = audit.runNow();
  await time.advance(1_000);
  await p;
  const expected = auditSubjects(src.state, rules).map((s) => `${s.kind}/${s.obj.metadata.name}`);
  t.same(order, expected);
  await audit.stop();
});
