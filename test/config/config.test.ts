import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { DEFAULT_APISERVER_CLIENTS, loadConfig, parseConfig } from '../../src/config/config.ts';
import { InputError } from '../../src/core/errors.ts';
import { allRules } from '../../src/rules/registry.ts';
import { FAKE_RULES } from '../verdict/fake-rules.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshguard-config-'));
let n = 0;
function file(text: string): string {
  const p = join(dir, `config-${n++}.yaml`);
  writeFileSync(p, text);
  return p;
}

/** The InputError loadConfig throws for `text`. */
function errorOf(text: string): InputError {
  const p = file(text);
  try {
    loadConfig(p, FAKE_RULES);
  } catch (e) {
    if (e instanceof InputError) return e;
    throw e;
  }
  throw new Error('expected an InputError');
}

t.test('no file: enforce, every rule at its severity default, default settings', async (t) => {
  const c = loadConfig(undefined, FAKE_RULES);
  t.equal(c.mode, 'enforce');
  t.same(c.rules, { 'fake-label': 'warn', 'fake-orphan-policy': 'deny', 'fake-throws': 'warn' });
  t.same(c.exemptions.namespaces, []);
  t.equal(c.settings.controlPlane, 'auto');
  t.same(c.settings.apiserverClients, [
    { namespace: 'kube-system', selector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
    { namespace: 'istio-system', selector: { matchLabels: { app: 'istiod' } } },
  ]);
  t.equal(c.file, undefined);
});

t.test('an empty file or one with only comments means the defaults', async (t) => {
  for (const text of ['', '# nothing here\n', '---\n']) {
    const c = loadConfig(file(text), FAKE_RULES);
    t.equal(c.mode, 'enforce');
    t.equal(c.rules['fake-orphan-policy'], 'deny');
  }
});

t.test('a full file', async (t) => {
  const p = file(`
mode: audit
rules:
  fake-orphan-policy: warn
  fake-label: off
exemptions:
  namespaces: [sandbox, ci-runners]
settings:
  controlPlane: outside-nodes
  apiserverClients:
    - namespace: monitoring
      selector:
        matchLabels: {app: prometheus}
    - selector:
        matchExpressions:
          - {key: team, operator: In, values: [platform]}
`);
  const c = loadConfig(p, FAKE_RULES);
  t.equal(c.mode, 'audit');
  t.same(c.rules, { 'fake-label': 'off', 'fake-orphan-policy': 'warn', 'fake-throws': 'warn' });
  t.same(c.exemptions.namespaces, ['sandbox', 'ci-runners']);
  t.equal(c.settings.controlPlane, 'outside-nodes');
  // User clients come on top of the defaults (CoreDNS and istiod keep their protection).
  t.same(c.settings.apiserverClients, [
    ...DEFAULT_APISERVER_CLIENTS,
    { namespace: 'monitoring', selector: { matchLabels: { app: 'prometheus' } } },
    { selector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['platform'] }] } },
  ]);
  t.equal(c.file, p);
});

t.test('defaultApiserverClients: false drops the built-in clients', async (t) => {
  const c = loadConfig(file('settings:\n  defaultApiserverClients: false\n'), FAKE_RULES);
  t.same(c.settings.apiserverClients, []);
});

t.test('JSON is YAML: a JSON config file works', async (t) => {
  const c = loadConfig(file('{"mode": "audit", "rules": {"fake-throws": "deny"}}'), FAKE_RULES);
  t.equal(c.mode, 'audit');
  t.equal(c.rules['fake-throws'], 'deny');
});

t.test('invalid YAML names the file and the line', async (t) => {
  const e = errorOf('mode: enforce\nrules:\n  fake-label: [warn\n');
  t.match(e.message, /invalid YAML/);
  t.ok(e.file?.endsWith('.yaml'));
  t.ok(e.line !== undefined && e.line >= 3, `line ${e.line}`);
  t.match(e.message, new RegExp(`^${e.file!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: `));
});

t.test('a duplicate key is an error, not a silent override', async (t) => {
  const e = errorOf('mode: enforce\nmode: audit\n');
  t.match(e.message, /invalid YAML/);
  t.equal(e.line, 2);
});

t.test('unknown top-level key: error with its path and line', async (t) => {
  const e = errorOf('mode: enforce\n\nexemption:\n  namespaces: [a]\n');
  t.match(e.message, /exemption: unknown key/);
  t.equal(e.line, 3);
});

t.test('unknown nested key: the JSON path and the line of the key', async (t) => {
  const e = errorOf(`settings:
  apiserverClients:
    - namespace: monitoring
      selectr:
        matchLabels: {app: x}
`);
  t.match(e.message, /settings\.apiserverClients\[0\]\.selectr: unknown key/);
  t.equal(e.line, 4);
});

t.test('unknown rule id: error naming it, a suggestion, and its line', async (t) => {
  const e = errorOf('rules:\n  fake-label: warn\n  fake-orphan-polcy: deny\n');
  t.match(e.message, /rules\.fake-orphan-polcy: unknown rule id/);
  t.match(e.message, /did you mean fake-orphan-policy\?/);
  t.equal(e.line, 3);
});

t.test('an unknown id far from any rule gets no suggestion', async (t) => {
  const e = errorOf('rules:\n  completely-different: deny\n');
  t.match(e.message, /unknown rule id/);
  t.notMatch(e.message, /did you mean/);
});

t.test('bad action: the allowed values, the path and the line', async (t) => {
  const e = errorOf('rules:\n  fake-label: warn\n  fake-throws: block\n');
  t.match(e.message, /rules\.fake-throws: must be one of deny, warn, audit, off/);
  t.equal(e.line, 3);
});

t.test('bad mode, bad controlPlane, bad namespace name, wrong types', async (t) => {
  t.match(errorOf('mode: strict\n').message, /mode: must be one of enforce, audit/);
  t.match(errorOf('settings:\n  controlPlane: cloud\n').message, /settings\.controlPlane: must be one of auto, outside-nodes, on-nodes/);
  t.match(errorOf('exemptions:\n  namespaces: [Sandbox_1]\n').message, /exemptions\.namespaces\[0\]: not a valid Kubernetes name/);
  t.match(errorOf('exemptions:\n  namespaces: sandbox\n').message, /exemptions\.namespaces: must be array/);
  t.match(errorOf('rules: [a, b]\n').message, /rules: must be object/);
  const req = errorOf('settings:\n  apiserverClients:\n    - namespace: a\n');
  t.match(req.message, /settings\.apiserverClients\[0\]\.selector: is required/);
  t.equal(req.line, 3);
  const op = errorOf('settings:\n  apiserverClients:\n    - selector:\n        matchExpressions:\n          - {key: a, operator: Like}\n');
  t.match(op.message, /operator: must be one of In, NotIn, Exists, DoesNotExist/);
  t.equal(op.line, 5);
});

t.test('docs.baseUrl: defaults to the rule pages under package.json homepage; a file may move it', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { homepage: string };
  t.match(pkg.homepage, /^https:\/\//, 'package.json names the project page');
  t.equal(loadConfig(undefined, FAKE_RULES).docs.baseUrl, `${pkg.homepage}/blob/main/docs/rules`);
  t.equal(loadConfig(file('mode: audit\n'), FAKE_RULES).docs.baseUrl, `${pkg.homepage}/blob/main/docs/rules`, 'a file without docs keeps the default');
  t.equal(loadConfig(file('docs:\n  baseUrl: https://wiki.example.com/meshguard/rules/\n'), FAKE_RULES).docs.baseUrl, 'https://wiki.example.com/meshguard/rules', 'trailing slash dropped');
  const http = errorOf('mode: enforce\ndocs:\n  baseUrl: http://wiki.example.com/rules\n');
  t.match(http.message, /docs\.baseUrl: must be an https:\/\/ URL without query or fragment/);
  t.equal(http.line, 3);
  t.match(errorOf('docs:\n  baseUrl: https://wiki.example.com/rules?page=\n').message, /docs\.baseUrl: must be an https:\/\/ URL/);
  t.match(errorOf(`docs:\n  baseUrl: https://example.com/${'x'.repeat(80)}\n`).message, /docs\.baseUrl: longer than 80 characters/);
  t.match(errorOf('docs:\n  baseURL: https://example.com\n').message, /docs\.baseURL: unknown key in docs/);
  const ctl = errorOf('mode: enforce\ndocs:\n  baseUrl: "https://example.com/a\\x01b"\n');
  t.match(ctl.message, /docs\.baseUrl: only printable ASCII characters/);
  t.equal(ctl.line, 3);
  t.match(errorOf('docs:\n  baseUrl: "https://[::1/rules"\n').message, /docs\.baseUrl: not a valid URL/);
});

t.test('a top level that is not a mapping', async (t) => {
  t.match(errorOf('- mode: audit\n').message, /must be a mapping/);
  t.match(errorOf('just a string\n').message, /must be a mapping/);
});

t.test('an unreadable file is an InputError naming it', async (t) => {
  const missing = join(dir, 'nope.yaml');
  t.throws(() => loadConfig(missing, FAKE_RULES), { name: 'InputError', message: `${missing}: cannot read the config file: ENOENT` });
  t.throws(() => loadConfig(dir, FAKE_RULES), { name: 'InputError', message: /is a directory, not a file or a pipe/ });
});

t.test('parseConfig checks rule ids against the catalogue it is given', async (t) => {
  t.throws(() => parseConfig('rules:\n  fake-label: warn\n', 'c.yaml', []), { message: /c\.yaml:2: rules\.fake-label: unknown rule id/ });
});

t.test('the config files shipped in deploy/ are valid for the real catalogue', async (t) => {
  const { readdirSync, statSync, existsSync } = await import('node:fs');
  const root = new URL('../../deploy/', import.meta.url).pathname;
  if (!existsSync(root)) return t.pass('no deploy/ yet');
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (/^config.*\.ya?ml$/.test(e)) found.push(p);
    }
  };
  walk(root);
  for (const f of found) t.doesNotThrow(() => loadConfig(f, allRules()), f);
});
