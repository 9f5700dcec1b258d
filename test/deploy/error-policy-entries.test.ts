// The error policy's default (src/verdict/error-policy.ts) must agree with the webhook entries that
// carry each kind: fail closed exactly for the kinds of the entry the enforce overlay sets to `Fail`,
// fail open for kinds whose entry is always `Ignore`. Rendered with kubectl kustomize when kubectl is
// here, so the overlays' patches are what is checked.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { parseAllDocuments } from 'yaml';

import { defaultConfig } from '../../src/config/config.ts';
import { KIND_NAMES, KINDS, type KindName } from '../../src/core/kinds.ts';
import { errorOutcome, POLICY_KINDS } from '../../src/verdict/error-policy.ts';

interface Webhook { name: string; failurePolicy: string; rules: { apiGroups: string[]; resources: string[] }[] }

const root = new URL('../../', import.meta.url).pathname;
const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });

function webhooks(overlay: string): Webhook[] {
  const r = spawnSync('kubectl', ['kustomize', `${root}deploy/overlays/${overlay}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${overlay}: ${r.stderr}`);
  const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as { kind?: string; webhooks?: Webhook[] });
  return docs.find((d) => d.kind === 'ValidatingWebhookConfiguration')?.webhooks ?? [];
}

function entryOf(hooks: Webhook[], kind: KindName): Webhook | undefined {
  const k = KINDS[kind];
  return hooks.find((w) => w.rules.some((r) => r.apiGroups.includes(k.group) && r.resources.includes(k.plural)));
}

t.test('enforce: error outcome = the failurePolicy of the entry carrying the kind', { skip: kubectl.status !== 0 && 'kubectl not installed' }, async (t) => {
  const hooks = webhooks('enforce');
  const config = defaultConfig([]);
  let checked = 0;
  for (const kind of KIND_NAMES) {
    const entry = entryOf(hooks, kind);
    if (!entry) continue;
    const expected = entry.failurePolicy === 'Fail' ? 'fail' : 'ignore';
    t.equal(errorOutcome(config, kind), expected, `${kind} (${entry.name}: ${entry.failurePolicy})`);
    checked++;
  }
  t.ok(checked >= POLICY_KINDS.size + 3, `every intercepted kind checked (${checked})`);
  for (const kind of POLICY_KINDS) t.ok(entryOf(hooks, kind), `${kind} is intercepted`);
});

t.test('audit: every entry is Ignore and every error is admitted', { skip: kubectl.status !== 0 && 'kubectl not installed' }, async (t) => {
  const hooks = webhooks('audit');
  t.ok(hooks.length > 0);
  for (const w of hooks) t.equal(w.failurePolicy, 'Ignore', w.name);
  const config = { ...defaultConfig([]), mode: 'audit' as const };
  for (const kind of KIND_NAMES) t.equal(errorOutcome(config, kind), 'ignore', kind);
});
