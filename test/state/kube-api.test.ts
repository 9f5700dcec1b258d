// meshguard's apiserver client: kubeconfig reading (the kubectl chain, relative paths, merged files,
// in-cluster), credentials (token, token file re-read, basic, client certificate, impersonation, exec
// plugins through client-node) and TLS settings, against loopback servers.
import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKubeApi, readBody } from '../../src/state/kube-api.ts';
import { collectionPath, listKind } from '../../src/state/live.ts';
import { makeCerts } from '../helpers/certs.ts';
import { FakeApiserver } from './fake-apiserver.ts';

// A throwaway CA and a serving certificate for localhost/127.0.0.1 (certs/ is gitignored).
const certDir = mkdtempSync(join(tmpdir(), 'kube-api-certs-'));
t.teardown(() => rmSync(certDir, { recursive: true, force: true }));
const certs = makeCerts(certDir);
const CA = readFileSync(certs.caCert, 'utf8');
const TLS_CERT = readFileSync(certs.cert, 'utf8');
const TLS_KEY = readFileSync(certs.key, 'utf8');

async function fake(t: { teardown(fn: () => unknown): void }): Promise<FakeApiserver> {
  const api = new FakeApiserver();
  await api.start();
  t.teardown(() => api.stop());
  api.serve(collectionPath('Namespace'));
  api.put(collectionPath('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
  return api;
}

function kubeconfig(server: string, user: Record<string, unknown>, cluster: Record<string, unknown> = {}): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server, ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  });
}

t.test('a token user lists; a wrong token is a 401', async (t) => {
  const api = await fake(t);
  const dir = t.testdir({ good: kubeconfig(api.url, { token: 'secret-token' }), bad: kubeconfig(api.url, { token: 'nope' }) });
  const good = loadKubeApi(join(dir, 'good'));
  t.teardown(() => good.close());
  t.equal(good.server, api.url);
  t.match(good.source, /good \(context c\)/);
  t.same((await listKind(good, 'Namespace')).items.map((n) => n.metadata.name), ['shop']);
  await t.rejects(listKind(loadKubeApi(join(dir, 'bad')), 'Namespace'), { name: 'ApiStatusError', statusCode: 401 });
});

t.test('tokenFile is relative to the kubeconfig and read again after its TTL (rotated tokens)', async (t) => {
  const api = await fake(t);
  const dir = t.testdir({ kc: kubeconfig(api.url, { tokenFile: 'sa/token' }), sa: { token: 'stale\n' } });
  const client = loadKubeApi(join(dir, 'kc'), { tokenFileTtlMs: 0 });
  t.teardown(() => client.close());
  await t.rejects(listKind(client, 'Namespace'), { name: 'ApiStatusError', statusCode: 401 }, 'the stale token is sent');
  writeFileSync(join(dir, 'sa/token'), 'secret-token\n');
  t.equal((await listKind(client, 'Namespace')).items.length, 1, 'the rotated token is picked up');

  const cached = loadKubeApi(join(dir, 'kc'), { tokenFileTtlMs: 3_600_000 });
  t.teardown(() => cached.close());
  t.equal((await listKind(cached, 'Namespace')).items.length, 1);
  writeFileSync(join(dir, 'sa/token'), 'stale\n');
  t.equal((await listKind(cached, 'Namespace')).items.length, 1, 'within the TTL the token read before is used');
});

t.test('an exec plugin user authenticates through client-node', async (t) => {
  const api = await fake(t);
  const plugin = 'process.stdout.write(JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token: "secret-token" } }))';
  const dir = t.testdir({
    kc: kubeconfig(api.url, { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', plugin], interactiveMode: 'Never' } }, { 'insecure-skip-tls-verify': true }), // client-node wants it for http://
  });
  const client = loadKubeApi(join(dir, 'kc'));
  t.teardown(() => client.close());
  t.same((await listKind(client, 'Namespace')).items.map((n) => n.metadata.name), ['shop']);
});

t.test('with several $KUBECONFIG files, an exec plugin is the resolved context\'s', async (t) => {
  const api = await fake(t);
  const printer = (token: string) => `process.stdout.write(JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token: "${token}" } }))`;
  const exec = (token: string) => ({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', printer(token)], interactiveMode: 'Never' } });
  const second = kubeconfig(api.url, exec('wrong'), { 'insecure-skip-tls-verify': true }).replace(/"c"/g, '"other"').replace(/"k"/g, '"k2"').replace(/"u"/g, '"u2"');
  const dir = t.testdir({ first: kubeconfig(api.url, exec('secret-token'), { 'insecure-skip-tls-verify': true }), second });
  const client = loadKubeApi(undefined, { env: { HOME: dir, KUBECONFIG: [join(dir, 'first'), join(dir, 'second')].join(':') } });
  t.teardown(() => client.close());
  t.match(client.source, /context c\)/, 'the first file\'s current-context, as kubectl');
  t.equal((await listKind(client, 'Namespace')).items.length, 1, 'its plugin ran (the other file\'s would send a wrong token)');
});

/** One kubeconfig, two clusters: context "shop" (current) and context "bank", each with its own server and user. */
function twoContexts(shopUrl: string, bankUrl: string): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'shop',
    clusters: [{ name: 'shop-cluster', cluster: { server: shopUrl } }, { name: 'bank-cluster', cluster: { server: bankUrl } }],
    users: [{ name: 'shop-user', user: { token: 'secret-token' } }, { name: 'bank-user', user: { token: 'secret-token' } }],
    contexts: [{ name: 'shop', context: { cluster: 'shop-cluster', user: 'shop-user' } }, { name: 'bank', context: { cluster: 'bank-cluster', user: 'bank-user' } }],
  });
}

t.test('a context given by name is used instead of current-context; an unknown one is an InputError', async (t) => {
  const shop = await fake(t);
  const bank = await fake(t);
  bank.put(collectionPath('Namespace'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bank' } });
  const dir = t.testdir({ kc: twoContexts(shop.url, bank.url), empty: {}, sa: { token: 'sa-token' } });
  const current = loadKubeApi(join(dir, 'kc'));
  t.teardown(() => current.close());
  t.equal(current.server, shop.url, 'current-context without --context');
  const named = loadKubeApi(join(dir, 'kc'), { context: 'bank' });
  t.teardown(() => named.close());
  t.equal(named.server, bank.url);
  t.match(named.source, /kc \(context bank\)$/);
  t.same((await listKind(named, 'Namespace')).items.map((n) => n.metadata.name).sort(), ['bank', 'shop'], 'listed from the bank cluster');
  // Through the kubectl chain too ($KUBECONFIG).
  const viaEnv = loadKubeApi(undefined, { env: { HOME: join(dir, 'empty'), KUBECONFIG: join(dir, 'kc') }, context: 'bank' });
  t.equal(viaEnv.server, bank.url);
  t.throws(() => loadKubeApi(join(dir, 'kc'), { context: 'nope' }), { name: 'InputError', message: `${join(dir, 'kc')}: kubeconfig: no context "nope" (it has shop, bank)` });
  // In a pod without a kubeconfig there is no context to pick: an error, not the service account.
  t.throws(() => loadKubeApi(undefined, { env: { HOME: join(dir, 'empty'), KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, serviceAccountDir: join(dir, 'sa'), context: 'bank' }), {
    name: 'InputError',
    message: /cannot use context "bank": no --kubeconfig, no \$KUBECONFIG file and no ~\/\.kube\/config/,
  });
});

t.test('credentials precedence and conflicts follow kubectl', async (t) => {
  const api = await fake(t);
  const dir = t.testdir({
    both: kubeconfig(api.url, { token: 'stale', tokenFile: 'tok' }),
    tok: 'secret-token',
    anonymous: JSON.stringify({ 'current-context': 'c', clusters: [{ name: 'k', cluster: { server: api.url } }], contexts: [{ name: 'c', context: { cluster: 'k' } }] }),
    tokenAndBasic: kubeconfig(api.url, { token: 't', username: 'u', password: 'p' }),
    insecureWithCa: kubeconfig('https://x', { token: 't' }, { 'insecure-skip-tls-verify': true, 'certificate-authority-data': 'Zm9v' }),
  });
  const both = loadKubeApi(join(dir, 'both'));
  t.teardown(() => both.close());
  t.equal((await listKind(both, 'Namespace')).items.length, 1, 'tokenFile wins over token');
  const anon = loadKubeApi(join(dir, 'anonymous'));
  t.teardown(() => anon.close());
  await t.rejects(listKind(anon, 'Namespace'), { name: 'ApiStatusError', statusCode: 401 }, 'a context without a user sends no credentials');
  t.throws(() => loadKubeApi(join(dir, 'tokenAndBasic')), { name: 'InputError', message: /both a token and a username\/password/ });
  t.throws(() => loadKubeApi(join(dir, 'insecureWithCa')), { name: 'InputError', message: /both a certificate authority and insecure-skip-tls-verify/ });
});

t.test('$KUBECONFIG files are merged, the first to name a thing wins; then ~/.kube/config; then in-cluster', async (t) => {
  const dir = t.testdir({
    a: JSON.stringify({ 'current-context': 'c', clusters: [{ name: 'k', cluster: { server: 'https://first:6443' } }] }),
    b: kubeconfig('https://second:6443', { token: 'x' }),
    home: { '.kube': { config: kubeconfig('https://home:6443', { token: 'x' }) } },
    sa: { token: 'sa-token', 'ca.crt': CA },
    empty: {},
  });
  const env = (e: Record<string, string>) => ({ env: { HOME: join(dir, 'empty'), ...e }, serviceAccountDir: join(dir, 'sa') });
  const merged = loadKubeApi(undefined, env({ KUBECONFIG: [join(dir, 'missing'), join(dir, 'a'), join(dir, 'b')].join(':') }));
  t.equal(merged.server, 'https://first:6443', 'cluster k from the first file that has it; context and user from the second');
  t.equal(loadKubeApi(undefined, env({ HOME: join(dir, 'home') })).server, 'https://home:6443');
  const pod = loadKubeApi(undefined, env({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' }));
  t.equal(pod.server, 'https://[fd00::1]:443');
  t.equal(pod.source, 'in-cluster service account');
  t.throws(() => loadKubeApi(undefined, env({})), { name: 'InputError', message: /no --kubeconfig, no \$KUBECONFIG, no ~\/.kube\/config, and not running in a cluster/ });
  t.throws(() => loadKubeApi(undefined, env({ KUBECONFIG: join(dir, 'missing') })), { name: 'InputError', message: /none of \$KUBECONFIG's files exist/ });
});

t.test('bad kubeconfigs are InputErrors naming the file (and line)', async (t) => {
  const dir = t.testdir({
    yaml: 'clusters:\n  - name: k\n   cluster: {}\n',
    noctx: kubeconfig('https://x', {}).replace('"current-context":"c"', '"current-context":""'),
    unknownctx: kubeconfig('https://x', {}).replace('"current-context":"c"', '"current-context":"other"'),
    proxy: kubeconfig('https://x', {}, { 'proxy-url': 'http://proxy:3128' }),
    nocert: kubeconfig('https://x', { 'client-certificate': 'missing.crt', 'client-key': 'missing.key' }),
    notaurl: kubeconfig('ftp://x', {}),
  });
  const f = (n: string) => join(dir, n);
  t.throws(() => loadKubeApi(f('yaml')), { name: 'InputError', file: f('yaml'), line: 3, message: /not valid YAML/ });
  t.throws(() => loadKubeApi(f('noctx')), { name: 'InputError', message: /no current-context/ });
  t.throws(() => loadKubeApi(f('unknownctx')), { message: /current-context "other" is not among its contexts/ });
  t.throws(() => loadKubeApi(f('proxy')), { message: /proxy-url, which meshguard does not support/ });
  t.throws(() => loadKubeApi(f('nocert')), { name: 'InputError', message: /client-certificate: cannot read .*missing\.crt/ });
  t.throws(() => loadKubeApi(f('notaurl')), { message: /neither https nor http/ });
  t.throws(() => loadKubeApi(f('nothere')), { name: 'InputError', file: f('nothere'), message: /cannot load kubeconfig/ });
});

t.test('TLS: the cluster CA is checked, a client certificate is presented, impersonation and basic auth are sent', async (t) => {
  const seen: { cert: boolean; headers: Record<string, unknown> }[] = [];
  const server = https.createServer(
    { cert: TLS_CERT, key: TLS_KEY, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate();
      seen.push({ cert: Boolean(peer && peer.subject), headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const ca = Buffer.from(CA).toString('base64');
  const dir = t.testdir({
    certs: { 'ca.crt': CA, 'me.crt': TLS_CERT, 'me.key': TLS_KEY },
    withCa: kubeconfig(url, { 'client-certificate': 'certs/me.crt', 'client-key': 'certs/me.key', as: 'jane', 'as-groups': ['ops', 'dev'] }, { 'certificate-authority': 'certs/ca.crt' }),
    caData: kubeconfig(url, { username: 'admin', password: 'pw' }, { 'certificate-authority-data': ca }),
    noCa: kubeconfig(url, { token: 't' }),
    insecure: kubeconfig(url, { token: 't' }, { 'insecure-skip-tls-verify': true }),
    wrongName: kubeconfig(url, { token: 't' }, { 'certificate-authority-data': ca, 'tls-server-name': 'not-the-name' }),
  });
  const get = async (name: string): Promise<string> => {
    const c = loadKubeApi(join(dir, name));
    try {
      return await readBody(await c.get('/api'));
    } finally {
      c.close();
    }
  };
  t.equal(await get('withCa'), '{"ok":true}');
  t.equal(seen.at(-1)!.cert, true, 'client certificate presented');
  t.equal(seen.at(-1)!.headers['impersonate-user'], 'jane');
  t.equal(seen.at(-1)!.headers['impersonate-group'], 'ops,dev');
  t.equal(await get('caData'), '{"ok":true}');
  t.equal(seen.at(-1)!.headers['authorization'], `Basic ${Buffer.from('admin:pw').toString('base64')}`);
  t.equal(seen.at(-1)!.cert, false, 'no client certificate when the user has none');
  await t.rejects(get('noCa'), /self-signed|unable to verify|local issuer/, 'an unknown CA is refused');
  t.equal(await get('insecure'), '{"ok":true}', 'insecure-skip-tls-verify');
  t.equal(seen.at(-1)!.headers['authorization'], 'Bearer t');
  await t.rejects(get('wrongName'), /altnames|Hostname/, 'tls-server-name is the name checked');

  // In a pod: the service's address from the environment, the service account's CA and token.
  const sa = t.testdir({ token: 'sa-token\n', 'ca.crt': CA });
  const port = (server.address() as AddressInfo).port;
  const pod = loadKubeApi(undefined, { env: { HOME: sa, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, serviceAccountDir: sa });
  t.teardown(() => pod.close());
  t.equal(await readBody(await pod.get('/api')), '{"ok":true}', 'the service account CA verifies the apiserver');
  t.equal(seen.at(-1)!.headers['authorization'], 'Bearer sa-token');
});
