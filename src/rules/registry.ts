// The rule catalogue, discovered from this directory. A rule is a folder `<id>/` (kebab-case) whose
// `index.ts` (`index.js` once built) exports `rule: Rule` with that id. Files directly in this directory
// are not rules: the registry and the rules' shared wording (render-helpers.ts); a dist/ built before the
// rules became folders may still hold old `<id>.js` files, which are ignored. The catalogue,
// `meshguard rules`, the config check and the docs test all read this one list, so a rule is added by
// adding its folder and nothing else (docs/adding-a-rule.md).

import { existsSync, readdirSync, statSync } from 'node:fs';
import type { Rule } from '../core/rule.ts';

/** Where a rule is found in a rules directory: its module (relative path) and the id it must declare. */
export interface RuleEntry {
  readonly id: string;
  /** `<id>/index.ts` (`<id>/index.js` once built). */
  readonly path: string;
}

/**
 * The rules in `dir` (a src/rules or dist/rules directory), sorted by id: every kebab-case folder with
 * an index module. A folder without one is not a rule (fixtures, shared code).
 */
export function ruleEntries(dir: URL): RuleEntry[] {
  const entries: RuleEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!KEBAB.test(name) || !statSync(new URL(name, dir)).isDirectory()) continue;
    const index = ['index.ts', 'index.js'].find((f) => existsSync(new URL(`${name}/${f}`, dir)));
    if (index) entries.push({ id: name, path: `${name}/${index}` });
  }
  return entries;
}

/** A rule folder's name is its id: kebab-case. */
const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;

function isRule(v: unknown): v is Rule {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.id === 'string' &&
    (r.severity === 'B' || r.severity === 'I' || r.severity === 'R') &&
    typeof r.summary === 'string' &&
    typeof r.docs === 'string' &&
    Array.isArray(r.triggers) &&
    typeof r.evaluate === 'function'
  );
}

/**
 * Load every rule of `dir`. A misnamed or malformed rule is a build bug: it fails loudly at startup
 * rather than letting meshguard run without it.
 */
export async function discoverRules(dir: URL): Promise<readonly Rule[]> {
  const entries = ruleEntries(dir);
  const rules: Rule[] = [];
  for (const { id, path } of entries) {
    const mod = (await import(new URL(path, dir).href)) as { rule?: unknown };
    if (!isRule(mod.rule)) throw new Error(`src/rules/${path} does not export \`rule: Rule\``);
    if (mod.rule.id !== id) throw new Error(`src/rules/${path} exports rule id "${mod.rule.id}"; it must be "${id}"`);
    if (mod.rule.messages !== undefined && mod.rule.messages.rule !== id) {
      throw new Error(`src/rules/${path}: its message table belongs to "${mod.rule.messages.rule}"`);
    }
    rules.push(mod.rule);
  }
  return Object.freeze(rules);
}

const RULES = await discoverRules(new URL('.', import.meta.url));

/** Every registered rule, sorted by id. */
export function allRules(): readonly Rule[] {
  return RULES;
}

export function ruleById(id: string): Rule | undefined {
  return RULES.find((r) => r.id === id);
}
