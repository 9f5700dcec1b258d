// The layer order of src/ (docs/adr/0006-one-way-layers.md) and the checker that test/architecture/
// layers.test.ts runs over every source file: an import may point to its own layer or a lower one.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';

import { importsOf, moduleLevelNews, type ImportRef, type ModuleLevelNew } from './imports.ts';

/** The layers, lowest first: the first path segment under src/. */
export const LAYERS = ['core', 'state', 'config', 'policy', 'impact', 'rules', 'verdict', 'reports', 'admission', 'server', 'cli'] as const;
export type Layer = (typeof LAYERS)[number];

export interface SourceFile {
  /** Path relative to the repository root, with forward slashes: `src/rules/x.ts`. */
  readonly path: string;
  readonly text: string;
}

export interface Violation {
  readonly file: string;
  readonly line: number;
  /** The imported file, resolved: `src/verdict/decide.ts`. */
  readonly target: string;
  readonly form: ImportRef['form'];
  /** The importer's layer and the target's; undefined when the file sits outside every layer. */
  readonly from: Layer | undefined;
  readonly to: Layer | undefined;
}

/** The layer of a path under src/, or undefined (a file directly in src/, or outside src/). */
export function layerOf(path: string): Layer | undefined {
  const m = /^src\/([^/]+)\//.exec(path);
  if (!m) return undefined;
  return (LAYERS as readonly string[]).includes(m[1]!) ? (m[1] as Layer) : undefined;
}

export const rank = (l: Layer): number => LAYERS.indexOf(l);

export function describe(v: Violation): string {
  const name = (l: Layer | undefined) => (l === undefined ? 'no layer' : `${l} (layer ${rank(l) + 1})`);
  return `${v.file}:${v.line}: ${name(v.from)} ${v.form} ${v.target}: ${name(v.to)}`;
}

/** Every source file under `dir` (a path relative to `root`), sorted. */
export function sourceFiles(root: string, dir = 'src'): SourceFile[] {
  const walk = (rel: string): string[] =>
    readdirSync(join(root, rel))
      .sort()
      .flatMap((name) => {
        const p = `${rel}/${name}`;
        if (statSync(join(root, p)).isDirectory()) return walk(p);
        return p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
      });
  return walk(dir).map((path) => ({ path, text: readFileSync(join(root, path), 'utf8') }));
}

/**
 * Imports that run against the layer order: from a lower layer to a higher one, or from or to a file
 * that is in no layer. Only relative specifiers are read (packages and node: builtins have no layer).
 */
export function layerViolations(files: readonly SourceFile[]): Violation[] {
  const out: Violation[] = [];
  for (const f of files) {
    const from = layerOf(f.path);
    for (const ref of importsOf(f.text)) {
      if (!ref.spec.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(f.path), ref.spec));
      if (!target.startsWith('src/')) {
        // package.json and the like are data, not code; anything else outside src/ (test helpers) is not
        // for shipped code.
        if (!target.endsWith('.json')) out.push({ file: f.path, line: ref.line, target, form: ref.form, from, to: undefined });
        continue;
      }
      const to = layerOf(target);
      if (from === undefined || to === undefined || rank(to) > rank(from)) out.push({ file: f.path, line: ref.line, target, form: ref.form, from, to });
    }
  }
  return out;
}

/** Module-level Maps and the like in src/rules/** (caches belong to policy). */
export function ruleModuleCaches(files: readonly SourceFile[]): (ModuleLevelNew & { readonly file: string })[] {
  return files.filter((f) => f.path.startsWith('src/rules/')).flatMap((f) => moduleLevelNews(f.text).map((n) => ({ ...n, file: f.path })));
}
