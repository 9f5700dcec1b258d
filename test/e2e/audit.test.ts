// meshguard with `mode: audit`: nothing is refused; warn findings reach kubectl as `Warning:` lines,
// audit findings become one log line each.

import t from 'tap';
import { waitFor, type KubectlResult } from './harness.ts';
import { apply, exists, namespace, out, pod, setup } from './scenario.ts';

t.test('audit mode', async (t) => {
  const env = await setup(t, {
    // dns-egress-missing stays a deny (downgraded to audit by the mode); split-brain-l7-sidecar warns.
    config: 'mode: audit\nrules:\n  split-brain-l7-sidecar: warn\n',
    objects: [
      namespace('pay', { 'istio-injection': 'enabled' }),
      pod('pay', 'checkout-0', { app: 'checkout' }, [{ name: 'http', containerPort: 8080 }], { sidecar: true }),
    ],
    // In audit mode nothing is refused, so the known-bad probe cannot be waited on: wait below until
    // meshguard logs a decision instead.
    webhook: { failurePolicy: 'Ignore', probe: null },
  });
  await waitFor('meshguard to see a request', async () => {
    await apply(env, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'pay', labels: { 'istio-injection': 'enabled', touch: String(Date.now()) } } });
    return /admission decision/.test(env.mg.logs());
  }, 30_000, 300);

  // Egress lockdown without DNS (dns-egress-missing: deny -> audit) and Cilium HTTP rules on a sidecar
  // pod (split-brain-l7-sidecar: warn).
  const bad = {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'checkout-lockdown', namespace: 'pay' },
    spec: {
      endpointSelector: { matchLabels: { app: 'checkout' } },
      ingress: [{
        fromEntities: ['cluster'],
        toPorts: [{ ports: [{ port: '8080', protocol: 'TCP' }], rules: { http: [{ method: 'GET', path: '/.*' }] } }],
      }],
      egress: [{ toEntities: ['world'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] }],
    },
  };

  const auditLines = (): { rule?: string; name?: string; msg?: string }[] =>
    env.mg.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => {
      try {
        return JSON.parse(l) as { rule?: string; name?: string; msg?: string };
      } catch {
        return {};
      }
    }).filter((l) => l.msg === 'audit finding' && l.name === 'checkout-lockdown');

  let r: KubectlResult | undefined;
  await t.test('the bad policy is admitted with warnings', async (t) => {
    r = await apply(env, bad);
    t.equal(r.code, 0, out(r));
    t.match(r.stdout, /ciliumnetworkpolicy\.cilium\.io\/checkout-lockdown created/);
    const warnings = r.stderr.split('\n').filter((l) => l.startsWith('Warning:'));
    t.ok(warnings.length >= 1, `kubectl printed Warning: lines: ${out(r)}`);
    t.ok(warnings.some((w) => w.includes('split-brain-l7-sidecar')), 'the warn finding is a Warning: line');
    t.ok(
      warnings.some((w) => /^Warning: +Docs: https:\/\/github\.com\/meshguard\/meshguard\/blob\/main\/docs\/rules\/split-brain-l7-sidecar\.md$/.test(w)),
      `its link reaches kubectl whole, on a line of its own: ${out(r)}`,
    );
    t.ok(
      warnings.some((w) => w.includes('[dns-egress-missing] (audit: would be denied)')),
      'the deny that audit mode lets through is still announced to the person applying',
    );
    t.ok(await exists(env, 'cnp', 'pay', 'checkout-lockdown'), 'stored');
  });

  await t.test('meshguard logs one line per audit finding', async (t) => {
    await waitFor('the audit log line', () => auditLines().length > 0, 5_000);
    const lines = auditLines();
    const rules = lines.map((l) => l.rule);
    t.same(rules.filter((x) => x === 'dns-egress-missing').length, 1, 'one line for dns-egress-missing');
    t.equal(new Set(rules).size, rules.length, 'no finding logged twice');
    t.notOk(rules.includes('split-brain-l7-sidecar'), 'warn findings are not audit lines');
    // The decision line says it was allowed.
    t.match(env.mg.logs(), /"name":"checkout-lockdown".*"verdict":"allowed"/);
  });
});
