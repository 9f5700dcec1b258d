// The rule catalogue, discovered from this directory: every folder `<id>/` with an `index.ts`
// (`index.js` once built), and, until every rule is a folder, every `<id>.ts` that is not plumbing,
// exports `rule: Rule` with that id. The catalogue, `meshguard rules`, the config check and the docs
// test all read this one list, so a rule is added by adding its folder (docs/adding-a-rule.md).

import { existsSync, readdirSync } from 'node:fs';
import type { Rule } from './types.ts';

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

/** The rule id a file must declare: its name without the extension (a folder's name is the id). */
export function ruleIdOfFile(file: string): string {
  return file.replace(/\.(ts|js)$/, '');
}

/** The module of a rule folder, `<id>/index.ts` (`index.js` once built), or undefined when it is not one. */
export function ruleFolderModule(dir: URL, name: string): string | undefined {
  if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(name)) return undefined;
  for (const file of ['index.ts', 'index.js']) {
    if (existsSync(new URL(`${name}/${file}`, dir))) return `${name}/${file}`;
  }
  return undefined;
}

/** Every rule module under `dir`, sorted: folders' index modules and single-file rules. */
export function ruleModules(dir: URL): string[] {
  const entries = readdirSync(dir, { withFileTypes: true });
  const folders = new Map<string, string>();
  for (const entry of entries) {
    const mod = entry.isDirectory() ? ruleFolderModule(dir, entry.name) : undefined;
    if (mod) folders.set(entry.name, mod);
  }
  const out = [...folders.values()];
  for (const entry of entries) {
    // A folder wins over a file of the same id: a dist/ built before the rule became a folder still
    // holds the old `<id>.js` (tsc does not delete outputs). test/rules/registry.test.ts checks that src/
    // never has both.
    if (!entry.isDirectory() && isRuleFile(entry.name) && !folders.has(ruleIdOfFile(entry.name))) out.push(entry.name);
  }
  return out.sort();
}

/** The rule id a rule module must declare: `<id>/index.ts` or `<id>.ts`. */
export function ruleIdOfModule(module: string): string {
  const slash = module.indexOf('/');
  return slash >= 0 ? module.slice(0, slash) : ruleIdOfFile(module);
}

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

async function discover(): Promise<readonly Rule[]> {
  const dir = new URL('.', import.meta.url);
  const rules: Rule[] = [];
  for (const file of ruleModules(dir)) {
    const mod = (await import(new URL(file, dir).href)) as { rule?: unknown };
    const id = ruleIdOfModule(file);
    // A misnamed or malformed rule is a build bug: fail loudly at startup rather than run without it.
    if (!isRule(mod.rule)) throw new Error(`src/rules/${file} does not export \`rule: Rule\``);
    if (mod.rule.id !== id) throw new Error(`src/rules/${file} exports rule id "${mod.rule.id}"; it must be "${id}"`);
    if (mod.rule.messages !== undefined && mod.rule.messages.rule !== id) {
      throw new Error(`src/rules/${file}: its message table belongs to "${mod.rule.messages.rule}"`);
    }
    rules.push(mod.rule);
  }
  return Object.freeze(rules.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
}

const RULES = await discover();
const BY_ID = new Map(RULES.map((r) => [r.id, r]));

/** Every registered rule, sorted by id. */
export function allRules(): readonly Rule[] {
  return RULES;
}

export function ruleById(id: string): Rule | undefined {
  return BY_ID.get(id);
}
