// The generic fixture runner: every `src/rules/<id>/testdata/*.yaml` is one scenario (the cluster, the
// request, the expected findings as data), run against rule <id> the way the verdict layer runs it: only
// when the request matches the rule's triggers, `before` = the cluster, `after` = its overlay with the
// request applied, every finding rendered through src/verdict/render.ts. The format is in
// docs/adding-a-rule.md ("Fixtures").

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';

import type { Operation } from '../../src/core/change.ts';
import { ruleById } from '../../src/rules/registry.ts';
import { kindOf } from '../../src/core/kinds.ts';
import { renderFinding } from '../../src/verdict/render.ts';
import { baseCluster, type Obj } from '../fixtures/cluster.ts';
import { runRule } from './rule-harness.ts';

interface Expected {
  readonly code: string;
  readonly preexisting?: boolean;
  /** Compared as a subset: only the params named here. */
  readonly params?: Record<string, unknown>;
  readonly victims?: readonly string[];
  readonly victimCount?: number;
  /** The rendered message, exactly (a golden test of the wording; one per code is plenty). */
  readonly message?: string;
  /** The rendered fix, exactly. */
  readonly fix?: string;
}

interface Fixture {
  readonly description: string;
  readonly cluster?: {
    /** Start from test/fixtures/cluster.ts's baseCluster (nodes, API server, kube-dns, cilium-config, istiod). */
    readonly base?: boolean;
    /** The base cluster's cilium-config data instead of the healthy one. */
    readonly ciliumConfig?: Record<string, string>;
    /** Base objects to leave out, by kind and name (namespace optional). */
    readonly without?: readonly { readonly kind: string; readonly name?: string; readonly namespace?: string }[];
    readonly objects?: readonly Obj[];
  };
  readonly request: { readonly operation: Operation; readonly object?: Obj; readonly oldObject?: Obj };
  readonly expect: readonly Expected[];
}

const rulesDir = new URL('../../src/rules/', import.meta.url);

/** Every fixture file: [rule id, file name]. */
function fixtureFiles(): [string, string][] {
  const out: [string, string][] = [];
  for (const entry of readdirSync(rulesDir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = new URL(`${entry.name}/testdata/`, rulesDir);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) out.push([entry.name, f]);
  }
  return out.sort();
}

function clusterOf(c: Fixture['cluster'] = {}): Obj[] {
  const base = c.base === false ? [] : c.ciliumConfig ? baseCluster([], c.ciliumConfig) : baseCluster();
  const kept = base.filter(
    (o) => !(c.without ?? []).some((w) => w.kind === o.kind && (w.name === undefined || w.name === o.metadata.name) && (w.namespace === undefined || w.namespace === o.metadata.namespace)),
  );
  return [...kept, ...(c.objects ?? [])];
}

const files = fixtureFiles();

t.test('every rule folder has fixtures, and every code of its message table is expected by one', async (t) => {
  const folders = readdirSync(rulesDir, { withFileTypes: true }).filter((e) => e.isDirectory() && ruleById(e.name));
  t.ok(folders.length >= 2, 'the converted rules are folders');
  for (const { name: id } of folders) {
    const mine = files.filter(([r]) => r === id);
    t.ok(mine.length >= 3, `${id}: at least three fixtures`);
    const expected = new Set(
      mine.flatMap(([, f]) => (parse(readFileSync(new URL(`${id}/testdata/${f}`, rulesDir), 'utf8')) as Fixture).expect.map((e) => e.code)),
    );
    for (const code of ruleById(id)?.messages?.byCode.keys() ?? []) t.ok(expected.has(code), `${code}: a fixture expects it`);
  }
});

for (const [id, file] of files) {
  t.test(`${id}/testdata/${file}`, async (t) => {
    const fx = parse(readFileSync(new URL(`${id}/testdata/${file}`, rulesDir), 'utf8')) as Fixture;
    t.ok(typeof fx.description === 'string' && fx.description.length > 0, 'has a description');
    const rule = ruleById(id);
    if (!rule) return t.fail(`no rule ${id}`);
    const subject = fx.request.object ?? fx.request.oldObject;
    if (!subject) return t.fail('the request has no object');
    const kind = kindOf(subject);
    const triggered = kind !== undefined && rule.triggers.some((tr) => tr.kinds.includes(kind) && tr.operations.includes(fx.request.operation));
    const findings = triggered
      ? runRule(rule, clusterOf(fx.cluster), fx.request.operation, fx.request.object ?? fx.request.oldObject, fx.request.oldObject ? { oldObject: fx.request.oldObject } : {}).findings
      : [];
    t.same(
      findings.map((f) => f.code),
      fx.expect.map((e) => e.code),
      fx.description,
    );
    findings.forEach((f, i) => {
      const e = fx.expect[i];
      if (!e) return;
      const text = renderFinding(f, rule.messages);
      t.ok(text.message.length > 0, `${f.code}: renders`);
      t.equal(Boolean(f.preexisting), Boolean(e.preexisting), `${f.code}: preexisting`);
      // Each param named in the fixture is compared exactly (lists in full); params not named are not.
      for (const [k, v] of Object.entries(e.params ?? {})) t.same(f.params?.[k], v, `${f.code}: params.${k}`);
      if (e.victims) t.same(f.victims, e.victims, `${f.code}: victims`);
      if (e.victimCount !== undefined) t.equal(f.victimCount, e.victimCount, `${f.code}: victimCount`);
      if (e.message !== undefined) t.equal(text.message, e.message, `${f.code}: message`);
      if (e.fix !== undefined) t.equal(text.fix, e.fix, `${f.code}: fix`);
    });
  });
}
