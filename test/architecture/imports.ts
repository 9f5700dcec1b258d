// A small reader of TypeScript modules for the architecture tests: which modules a file imports (static,
// `import type`, `export ... from`, `import(...)` with a literal path, type-level `import('...')`), and
// which Maps a file creates at module level. It tokenizes (comments, strings, template literals and
// regex literals are skipped, so an import inside a comment or a string does not count) instead of
// compiling: the TypeScript in node_modules has no JavaScript API, and this needs none.

export interface Token {
  readonly kind: 'id' | 'str' | 'punct' | 'other';
  readonly text: string;
  readonly line: number;
}

const ID_START = /[A-Za-z_$#]/;
const ID_PART = /[\w$]/;
/** After these keywords a `/` starts a regular expression, not a division. */
const REGEX_AFTER_WORDS = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

/** Tokens of a TypeScript source, without comments and whitespace. Never throws on odd input. */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  // What each open `{` is: a block/object (`brace`) or the `${` of a template literal (`template`).
  const braces: ('brace' | 'template')[] = [];
  const n = src.length;

  const regexAllowed = (): boolean => {
    const prev = out[out.length - 1];
    if (!prev) return true;
    if (prev.kind === 'id') return REGEX_AFTER_WORDS.has(prev.text);
    if (prev.kind === 'str' || prev.kind === 'other') return false;
    return prev.text !== ')' && prev.text !== ']' && prev.text !== '}';
  };

  /** Reads template characters from i (just after ` or the } that closes a ${); returns at ` or ${. */
  const templateChunk = (): void => {
    while (i < n) {
      const c = src[i]!;
      if (c === '\\') {
        if (src[i + 1] === '\n') line++;
        i += 2;
      } else if (c === '`') {
        i++;
        out.push({ kind: 'str', text: '`', line });
        return;
      } else if (c === '$' && src[i + 1] === '{') {
        i += 2;
        braces.push('template');
        return;
      } else {
        if (c === '\n') line++;
        i++;
      }
    }
  };

  while (i < n) {
    const c = src[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (c === ' ' || c === '\t' || c === '\r') {
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      i += 2;
      while (i < n && !(src[i] === '*' && src[i + 1] === '/')) {
        if (src[i] === '\n') line++;
        i++;
      }
      i += 2;
    } else if (c === "'" || c === '"') {
      const start = line;
      let text = '';
      i++;
      while (i < n && src[i] !== c && src[i] !== '\n') {
        if (src[i] === '\\') {
          text += src[i + 1] ?? '';
          i += 2;
        } else text += src[i++];
      }
      i++;
      out.push({ kind: 'str', text, line: start });
    } else if (c === '`') {
      i++;
      templateChunk();
    } else if (c === '}' && braces[braces.length - 1] === 'template') {
      braces.pop();
      i++;
      templateChunk();
    } else if (c === '/' && regexAllowed()) {
      i++;
      let inClass = false;
      while (i < n && src[i] !== '\n') {
        const r = src[i]!;
        if (r === '\\') i += 2;
        else {
          i++;
          if (r === '[') inClass = true;
          else if (r === ']') inClass = false;
          else if (r === '/' && !inClass) break;
        }
      }
      while (i < n && ID_PART.test(src[i]!)) i++;
      out.push({ kind: 'other', text: '/re/', line });
    } else if (ID_START.test(c)) {
      const start = i;
      i++;
      while (i < n && ID_PART.test(src[i]!)) i++;
      out.push({ kind: 'id', text: src.slice(start, i), line });
    } else if (c >= '0' && c <= '9') {
      const start = i;
      while (i < n && /[\w.]/.test(src[i]!)) i++;
      out.push({ kind: 'other', text: src.slice(start, i), line });
    } else if (c === '=' && src[i + 1] === '>') {
      out.push({ kind: 'punct', text: '=>', line });
      i += 2;
    } else if (c === '.' && src[i + 1] === '.' && src[i + 2] === '.') {
      out.push({ kind: 'punct', text: '...', line });
      i += 3;
    } else {
      if (c === '{') braces.push('brace');
      else if (c === '}') braces.pop();
      out.push({ kind: 'punct', text: c, line });
      i++;
    }
  }
  return out;
}

export interface ImportRef {
  /** The module specifier as written. */
  readonly spec: string;
  readonly line: number;
  readonly form: 'import' | 'import type' | 'export from' | 'dynamic import';
}

const is = (t: Token | undefined, text: string): boolean => t !== undefined && t.kind !== 'str' && t.text === text;

/** Every module a file refers to with a literal specifier. */
export function importsOf(src: string): ImportRef[] {
  const toks = tokenize(src);
  const refs: ImportRef[] = [];
  /** The string after the `from` that ends the clause starting at `from` (within `limit` tokens), if any. */
  const fromClause = (start: number): { spec: string; line: number } | undefined => {
    let depth = 0;
    for (let j = start; j < toks.length && j < start + 2000; j++) {
      const t = toks[j]!;
      if (t.kind === 'punct' && t.text === '{') depth++;
      else if (t.kind === 'punct' && t.text === '}') depth--;
      else if (depth === 0 && t.kind === 'punct' && t.text === ';') return undefined;
      else if (depth === 0 && is(t, 'from') && toks[j + 1]?.kind === 'str') return { spec: toks[j + 1]!.text, line: toks[j + 1]!.line };
      else if (depth === 0 && j > start && (is(t, 'import') || is(t, 'export'))) return undefined;
    }
    return undefined;
  };
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    if (t.kind !== 'id' || is(toks[k - 1], '.')) continue;
    const next = toks[k + 1];
    if (t.text === 'import') {
      if (is(next, '(')) {
        const arg = toks[k + 2];
        if (arg?.kind === 'str' && arg.text !== '`' && (is(toks[k + 3], ')') || is(toks[k + 3], ','))) {
          refs.push({ spec: arg.text, line: arg.line, form: 'dynamic import' });
        }
      } else if (next?.kind === 'str') {
        refs.push({ spec: next.text, line: next.line, form: 'import' });
      } else if (next && !is(next, '.') && !is(next, ':') && !is(next, '=')) {
        const c = fromClause(k + 1);
        if (c) refs.push({ ...c, form: is(next, 'type') && !is(toks[k + 2], 'from') ? 'import type' : 'import' });
      }
    } else if (t.text === 'export' && (is(next, '*') || is(next, '{') || (is(next, 'type') && (is(toks[k + 2], '{') || is(toks[k + 2], '*'))))) {
      const c = fromClause(k + 1);
      if (c) refs.push({ ...c, form: 'export from' });
    }
  }
  return refs;
}

/** Constructors whose module-level instances are caches (or registries acting as ones). */
export const CACHE_CONSTRUCTORS: ReadonlySet<string> = new Set(['Map', 'WeakMap', 'ScopedWeakMap', 'WeakSet']);

export interface ModuleLevelNew {
  /** The constructor (Map, WeakMap, ScopedWeakMap, WeakSet). */
  readonly ctor: string;
  /** The name the top-level statement declares (`const NAME = ...`), or '' when it declares none. */
  readonly name: string;
  readonly line: number;
}

/**
 * `new Map()` and the like that run when the module loads: in a top-level statement, outside any
 * function (declarations, function expressions, arrows, methods, default parameters) and class body.
 * Object literals, array literals and call arguments at top level are still module level.
 */
export function moduleLevelNews(src: string, ctors: ReadonlySet<string> = CACHE_CONSTRUCTORS): ModuleLevelNew[] {
  const toks = tokenize(src);
  // Matching brackets, to look past the `)` of a parenthesised list.
  const match = new Map<number, number>();
  const open: number[] = [];
  toks.forEach((t, k) => {
    if (t.kind !== 'punct') return;
    if (t.text === '(' || t.text === '[' || t.text === '{') open.push(k);
    else if (t.text === ')' || t.text === ']' || t.text === '}') {
      const o = open.pop();
      if (o !== undefined) match.set(o, k);
    }
  });
  const isFnParams = (k: number): boolean => {
    const close = match.get(k);
    const after = close === undefined ? undefined : toks[close + 1];
    // `(a) => ...`, `f(a) {` (declaration, method), `(a): T => ...`
    if (is(after, '=>') || is(after, '{') || is(after, ':')) return true;
    const before = toks[k - 1];
    return is(before, 'function') || (before?.kind === 'id' && is(toks[k - 2], 'function'));
  };
  const isExpressionBrace = (k: number): boolean => {
    const before = toks[k - 1];
    if (!before) return false;
    if (before.kind === 'id') return before.text === 'return' || before.text === 'yield';
    return ['=', '(', ',', ':', '[', '?', '|', '&', '...'].includes(before.text);
  };
  interface Frame {
    readonly transparent: boolean;
    /** An expression-bodied arrow started at this bracket level and has not ended yet. */
    arrow: boolean;
  }
  const frames: Frame[] = [{ transparent: true, arrow: false }];
  const found: ModuleLevelNew[] = [];
  let declared = '';
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    const top = frames[frames.length - 1]!;
    if (frames.length === 1 && t.kind === 'id' && (t.text === 'const' || t.text === 'let' || t.text === 'var')) {
      declared = toks[k + 1]?.kind === 'id' ? toks[k + 1]!.text : '';
    }
    if (t.kind === 'punct') {
      if (t.text === '(') frames.push({ transparent: !isFnParams(k), arrow: false });
      else if (t.text === '[') frames.push({ transparent: true, arrow: false });
      else if (t.text === '{') frames.push({ transparent: isExpressionBrace(k), arrow: false });
      else if (t.text === ')' || t.text === ']' || t.text === '}') {
        if (frames.length > 1) frames.pop();
      } else if (t.text === '=>' && !is(toks[k + 1], '{')) top.arrow = true;
      else if (t.text === ',' || t.text === ';') {
        top.arrow = false;
        if (t.text === ';' && frames.length === 1) declared = '';
      }
      continue;
    }
    if (is(t, 'new') && toks[k + 1]?.kind === 'id' && ctors.has(toks[k + 1]!.text)) {
      if (frames.every((f) => f.transparent && !f.arrow)) found.push({ ctor: toks[k + 1]!.text, name: declared, line: t.line });
    }
  }
  return found;
}
