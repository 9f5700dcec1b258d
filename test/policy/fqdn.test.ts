// src/policy/fqdn.ts: which toFQDNs of a pod never match for want of the DNS proxy, and when that is new.
import t from 'tap';
import { fqdnNameKey, fqdnNewlyBroken, fqdnProblem } from '../../src/policy/index.ts';
import { baseCluster, cnp, findPod, memoryState, ns, pod } from '../fixtures/cluster.ts';

const kubeDns = [{ matchLabels: { 'k8s:io.kubernetes.pod.namespace': 'kube-system', 'k8s:k8s-app': 'kube-dns' } }];
const dns = (rules?: Record<string, string>[]) => ({ toEndpoints: kubeDns, toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }], ...(rules ? { rules: { dns: rules } } : {}) }] });
const fq = (sel: Record<string, string>) => ({ toFQDNs: [sel], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] });
const stateWith = (egress: unknown[]) =>
  memoryState(baseCluster([ns('team'), pod('team', 'c', { app: 'c' }), cnp('team', 'p', { endpointSelector: { matchLabels: { app: 'c' } }, egress })]));

t.test('fqdnProblem: no toFQDNs, no DNS, no proxy, uncovered, covered', async (t) => {
  const judge = (egress: unknown[]) => {
    const s = stateWith(egress);
    return fqdnProblem(s, findPod(s, 'team/c'));
  };
  t.equal(judge([dns()]), undefined, 'no toFQDNs: nothing to judge');
  t.same(judge([fq({ matchName: 'a.example.com' })]), { kind: 'no-dns', names: ['a.example.com'] });
  t.same(judge([dns(), fq({ matchName: 'a.example.com' })]), { kind: 'no-proxy', names: ['a.example.com'] });
  t.same(judge([dns([{ matchPattern: '*.corp' }]), fq({ matchName: 'a.example.com' }), fq({ matchPattern: 'api*.corp' })]), { kind: 'uncovered', names: ['a.example.com'] });
  t.equal(judge([dns([{ matchPattern: '*.example.com' }]), fq({ matchPattern: '*.example.com' }), fq({ matchName: 'A.example.com.' })]), undefined);
});

t.test('fqdnNewlyBroken and name spelling', async (t) => {
  t.equal(fqdnNameKey(' API.Example.com. '), 'api.example.com');
  const now = { kind: 'uncovered', names: ['a.example.com', 'B.example.com.'] } as const;
  t.equal(fqdnNewlyBroken(now, undefined), true, 'worked before');
  t.equal(fqdnNewlyBroken(now, { kind: 'no-dns', names: [] }), false, 'nothing resolved before');
  t.equal(fqdnNewlyBroken(now, { kind: 'no-proxy', names: ['a.example.com', 'b.example.com'] }), false, 'same names, respelt');
  t.equal(fqdnNewlyBroken(now, { kind: 'uncovered', names: ['a.example.com'] }), true, 'b is new');
});
