import t from 'tap';
import { ciliumConfig } from '../../src/policy/cilium-config.ts';
import { baseCluster, ciliumConfigMap, memoryState, HEALTHY_CILIUM_CONFIG } from '../fixtures/cluster.ts';

const cfg = (data: Record<string, string>) => ciliumConfig(memoryState(baseCluster([], data)));

t.test('no cilium-config: agent defaults', async (t) => {
  const c = ciliumConfig(memoryState([]));
  t.equal(c.present, false);
  t.equal(c.enablePolicy, 'default');
  t.equal(c.routingMode, 'tunnel');
  t.equal(c.kubeProxyReplacement, false);
  t.equal(c.socketLB, false);
  t.equal(c.socketLBHostnsOnly, false);
  t.equal(c.cniExclusive, true);
  t.equal(c.l7Proxy, true);
  t.equal(c.nonDefaultDenyPolicies, true);
  t.same(c.data, {});
});

t.test('the healthy Cilium + Istio config of the fixtures', async (t) => {
  const c = cfg(HEALTHY_CILIUM_CONFIG);
  t.equal(c.present, true);
  t.equal(c.routingMode, 'native');
  t.equal(c.kubeProxyReplacement, true);
  t.equal(c.socketLB, true);
  t.equal(c.socketLBHostnsOnly, true);
  t.equal(c.cniExclusive, false);
  t.equal(c.data['routing-mode'], 'native');
});

t.test('enable-policy values', async (t) => {
  t.equal(cfg({ 'enable-policy': 'always' }).enablePolicy, 'always');
  t.equal(cfg({ 'enable-policy': 'never' }).enablePolicy, 'never');
  t.equal(cfg({ 'enable-policy': 'Always' }).enablePolicy, 'always');
  t.equal(cfg({ 'enable-policy': 'bogus' }).enablePolicy, 'default');
  t.equal(cfg({}).enablePolicy, 'default');
});

t.test('routing mode: routing-mode, legacy tunnel key, default tunnel', async (t) => {
  t.equal(cfg({}).routingMode, 'tunnel', 'nothing set = VXLAN tunnel');
  t.equal(cfg({ 'routing-mode': 'tunnel', 'tunnel-protocol': 'geneve' }).routingMode, 'tunnel');
  t.equal(cfg({ 'routing-mode': 'native' }).routingMode, 'native');
  t.equal(cfg({ tunnel: 'disabled' }).routingMode, 'native', 'pre-1.14 native routing');
  t.equal(cfg({ tunnel: 'vxlan' }).routingMode, 'tunnel');
  t.equal(cfg({ tunnel: 'geneve' }).routingMode, 'tunnel');
  t.equal(cfg({ 'routing-mode': 'native', tunnel: 'vxlan' }).routingMode, 'native', 'routing-mode wins');
  t.equal(cfg({ 'tunnel-protocol': 'geneve' }).routingMode, 'tunnel');
});

t.test('kube-proxy replacement and socket LB, current and older values', async (t) => {
  for (const v of ['true', 'strict']) {
    const c = cfg({ 'kube-proxy-replacement': v });
    t.equal(c.kubeProxyReplacement, true, v);
    t.equal(c.socketLB, true, `${v}: socket LB on`);
  }
  for (const v of ['false', 'disabled', 'partial', '']) {
    const c = cfg({ 'kube-proxy-replacement': v });
    t.equal(c.kubeProxyReplacement, false, v);
    t.equal(c.socketLB, false, `${v}: no socket LB`);
  }
  t.equal(cfg({ 'kube-proxy-replacement': 'false', 'bpf-lb-sock': 'true' }).socketLB, true, 'bpf-lb-sock alone');
  t.equal(cfg({ 'kube-proxy-replacement': 'partial', 'enable-host-reachable-services': 'true' }).socketLB, true, 'pre-1.12 key');
  t.equal(cfg({ 'kube-proxy-replacement': 'probe' }).kubeProxyReplacement, false);
  t.equal(cfg({ 'kube-proxy-replacement': 'probe' }).socketLB, true, 'probe enables socket LB on current kernels');
  t.equal(cfg({ 'bpf-lb-sock-hostns-only': 'true' }).socketLBHostnsOnly, true);
  t.equal(cfg({ 'bpf-lb-sock-hostns-only': 'false' }).socketLBHostnsOnly, false);
});

t.test('boolean defaults and Go-style parsing', async (t) => {
  t.equal(cfg({ 'cni-exclusive': 'false' }).cniExclusive, false);
  t.equal(cfg({ 'cni-exclusive': 'True' }).cniExclusive, true);
  t.equal(cfg({ 'cni-exclusive': 'garbage' }).cniExclusive, true, 'unparsable = default');
  t.equal(cfg({ 'enable-l7-proxy': 'false' }).l7Proxy, false);
  t.equal(cfg({ 'enable-l7-proxy': '0' }).l7Proxy, false);
  t.equal(cfg({ 'enable-non-default-deny-policies': 'false' }).nonDefaultDenyPolicies, false);
});

t.test('follows updates of the ConfigMap (per-revision cache)', async (t) => {
  const s = memoryState(baseCluster([], { 'routing-mode': 'native' }));
  t.equal(ciliumConfig(s).routingMode, 'native');
  s.upsert('ConfigMap', ciliumConfigMap({ 'routing-mode': 'tunnel' }) as never);
  t.equal(ciliumConfig(s).routingMode, 'tunnel');
});
