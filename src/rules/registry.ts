// The rule catalogue, discovered from this directory: every `<id>.ts` (`<id>.js` once built) that is
// not plumbing exports `rule: Rule` with that id. The catalogue, `meshguard rules`, the config check
// and the docs test all read this one list, so a rule is added by adding its file and nothing else.

import { readdirSync } from 'node:fs';
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

/** The rule id a file must declare: its name without the extension. */
export function ruleIdOfFile(file: string): string {
  return file.replace(/\.(ts|js)$/, '');
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
  const files = readdirSync(dir).filter(isRuleFile).sort();
  const rules: Rule[] = [];
  for (const file of files) {
    const mod = (await import(new URL(file, dir).href)) as { rule?: unknown };
    const id = ruleIdOfFile(file);
    // A misnamed or malformed rule is a build bug: fail loudly at startup rather than run without it.
    if (!isRule(mod.rule)) throw new Error(`src/rules/${file} does not export \`rule: Rule\``);
    if (mod.rule.id !== id) throw new Error(`src/rules/${file} exports rule id "${mod.rule.id}"; it must be "${id}"`);
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
