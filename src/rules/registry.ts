// The rule catalogue, discovered from this directory. A rule is either a folder `<id>/` whose
// `index.ts` (`index.js` once built) exports `rule: Rule` with that id, or a single file `<id>.ts`
// that does (the older shape, until every rule is a folder). A folder wins over a file of the same id:
// a dist/ built before the rule became a folder still holds the old `<id>.js` (tsc does not delete
// outputs); test/rules/registry.test.ts checks that src/ never has both. Files that are not rules: registry,
// types, index, and shared code (`*-helpers.ts`, `*util*`). The catalogue, `meshguard rules`, the
// config check and the docs test all read this one list, so a rule is added by adding its folder
// and nothing else.

import { existsSync, readdirSync, statSync } from 'node:fs';
import type { Rule } from '../core/rule.ts';

/** Files in src/rules that are not rules. */
export function isRuleFile(file: string): boolean {
  if (file.endsWith('.d.ts')) return false;
  const m = /^(.+)\.(ts|js)$/.exec(file);
  if (!m) return false;
  const base = m[1]!;
  if (base === 'index' || base === 'registry' || base === 'types') return false;
  if (base.includes('helpers') || base.includes('util')) return false;
  return true;
}

/** The rule id a file must declare: its name without the extension. */
export function ruleIdOfFile(file: string): string {
  return file.replace(/\.(ts|js)$/, '');
}

/** Where a rule is found in a rules directory: its module (relative path) and the id it must declare. */
export interface RuleEntry {
  readonly id: string;
  /** `<id>.ts` or `<id>/index.ts` (`.js` once built). */
  readonly path: string;
}

/**
 * The rules in `dir` (a src/rules or dist/rules directory), sorted by id: every rule file, and every
 * folder with an index module. A folder without one is not a rule (fixtures, shared code).
 */
export function ruleEntries(dir: URL): RuleEntry[] {
  const folders = new Map<string, RuleEntry>();
  const files: RuleEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = new URL(name, dir);
    if (statSync(full).isDirectory()) {
      if (!KEBAB.test(name)) continue;
      const index = ['index.ts', 'index.js'].find((f) => existsSync(new URL(`${name}/${f}`, dir)));
      if (index) folders.set(name, { id: name, path: `${name}/${index}` });
    } else if (isRuleFile(name)) {
      files.push({ id: ruleIdOfFile(name), path: name });
    }
  }
  const entries = [...folders.values(), ...files.filter((f) => !folders.has(f.id))];
  return entries.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
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
