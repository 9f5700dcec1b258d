// Read Kubernetes manifests from files and directories: multi-document YAML, JSON, and Lists (`kind: List`
// or `PodList` etc., what `kubectl get -o yaml` prints) flattened into their items. Every object keeps
// the file and 1-based line it came from, so errors and findings can point at it.

import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isSeq, LineCounter, parseAllDocuments, parseDocument, type Node as YamlNode } from 'yaml';
import { InputError } from '../errors.ts';

export interface ManifestDoc {
  readonly object: Record<string, unknown>;
  readonly file: string;
  /** 1-based line where the object starts. */
  readonly line: number;
}

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Files to read, in order: a file as given; a directory's *.yaml, *.yml and *.json files, recursively,
 * sorted by path. Entries starting with "." are skipped (editor files, and the `..data` links of a
 * mounted ConfigMap volume, which would otherwise be read twice).
 */
function expand(paths: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch (e) {
      throw new InputError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? errMessage(e)}`, { file: p });
    }
    if (!st.isDirectory()) {
      out.push(p);
      continue;
    }
    const found: string[] = [];
    walk(p, found, new Set());
    found.sort();
    out.push(...found);
  }
  return out;
}

function walk(dir: string, out: string[], seen: Set<string>): void {
  let real: string;
  let entries: string[];
  try {
    real = realpathSync(dir);
    entries = readdirSync(dir);
  } catch (e) {
    throw new InputError(`cannot read directory: ${(e as NodeJS.ErrnoException).code ?? errMessage(e)}`, { file: dir });
  }
  if (seen.has(real)) return; // symlink loop
  seen.add(real);
  for (const name of entries) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      continue; // dangling symlink
    }
    if (st.isDirectory()) walk(p, out, seen);
    else if (st.isFile() && MANIFEST_EXT.test(name)) out.push(p);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether a document is a List whose items are the real objects. */
function isList(o: Record<string, unknown>): boolean {
  return typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items);
}

/** Throws unless `o` looks like a Kubernetes object. */
function checkObject(o: unknown, file: string, line: number, what = 'document'): asserts o is Record<string, unknown> {
  if (!isRecord(o)) throw new InputError(`${what} is not a Kubernetes object (a mapping)`, { file, line });
  for (const f of ['apiVersion', 'kind'] as const) {
    if (typeof o[f] !== 'string' || o[f] === '') throw new InputError(`${what} has no ${f}`, { file, line });
  }
  if (isList(o)) return;
  const m = o.metadata;
  if (!isRecord(m) || typeof m.name !== 'string' || m.name === '') {
    throw new InputError(`${what} (${String(o.kind)}) has no metadata.name`, { file, line });
  }
}

function lineOf(node: YamlNode | null | undefined, lc: LineCounter): number {
  const off = node?.range?.[0];
  return off === undefined ? 1 : lc.linePos(off).line;
}

/** Push a document's objects (itself, or a List's items) with their lines. */
function collect(
  obj: unknown,
  node: YamlNode | null | undefined,
  file: string,
  lc: LineCounter | undefined,
  out: ManifestDoc[],
): void {
  const line = lc ? lineOf(node, lc) : 1;
  checkObject(obj, file, line);
  if (!isList(obj)) {
    out.push({ object: obj, file, line });
    return;
  }
  const itemsNode = isMap(node) ? node.get('items', true) : undefined;
  const itemNodes = isSeq(itemsNode) ? itemsNode.items : [];
  (obj.items as unknown[]).forEach((item, i) => {
    const n = itemNodes[i] as YamlNode | undefined;
    const itemLine = lc && n ? lineOf(n, lc) : line;
    if (item === null || item === undefined) return;
    checkObject(item, file, itemLine, `item ${i} of the ${String(obj.kind)}`);
    // A List inside a List is not something kubectl prints; treat it as an object like any other.
    out.push({ object: item, file, line: itemLine });
  });
}

function yamlErrorText(e: { message: string }): string {
  // The first line, without the position the InputError prefix already carries.
  const first = e.message.split('\n')[0] ?? e.message;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}

function readYaml(file: string, text: string, out: ManifestDoc[]): void {
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: false });
  // parseAllDocuments returns an EmptyStream (no docs) or an array of Documents.
  if (!Array.isArray(docs)) return;
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      throw new InputError(`invalid YAML: ${yamlErrorText(err)}`, { file, line: err.linePos?.[0]?.line ?? lineOf(doc.contents, lc) });
    }
    if (doc.contents === null) continue; // empty document ("---" alone, or comments only)
    let obj: unknown;
    try {
      obj = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      throw new InputError(`invalid YAML: ${errMessage(e)}`, { file, line: lineOf(doc.contents, lc) });
    }
    if (obj === null || obj === undefined) continue;
    collect(obj, doc.contents, file, lc, out);
  }
}

/**
 * Offset of the first syntax error in `text` (JSON grammar), for error messages only: JSON.parse has
 * already said the text is invalid.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const lit = (w: string) => (text.startsWith(w, i) ? (i += w.length) : fail());
  const string = () => {
    i++; // opening quote
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text.charCodeAt(i) < 0x20) fail();
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const value = (depth: number): void => {
    if (depth > 512) fail();
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      ws();
      if (text[i] === '}') return void i++;
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') return void i++;
        else fail();
      }
    } else if (c === '[') {
      i++;
      ws();
      if (text[i] === ']') return void i++;
      for (;;) {
        value(depth + 1);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') return void i++;
        else fail();
      }
    } else if (c === '"') string();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
      if (!m) fail();
      i += m![0].length;
    }
  };
  try {
    value(0);
    ws();
    return i;
  } catch (at) {
    return typeof at === 'number' ? at : 0;
  }
}

function readJson(file: string, text: string, out: ManifestDoc[]): void {
  if (text.trim() === '') return;
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    const msg = errMessage(e);
    // V8 does not always say where: then find the offset with a small scanner.
    const pos = /position (\d+)/.exec(msg);
    const offset = pos ? Number(pos[1]) : jsonErrorOffset(text);
    const line = text.slice(0, offset).split('\n').length;
    const short = msg
      .replace(/, ".*" is not valid JSON$/s, '')
      .replace(/ in JSON at position.*$/s, '')
      .replace(/\s+/g, ' ');
    throw new InputError(`invalid JSON: ${short}`, { file, line: line ?? 1 });
  }
  // JSON is YAML: re-parse for the line numbers of List items (best effort; line 1 otherwise).
  const lc = new LineCounter();
  let node: YamlNode | null | undefined;
  try {
    const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: false });
    node = doc.errors.length === 0 ? doc.contents : undefined;
  } catch {
    node = undefined;
  }
  collect(obj, node, file, node ? lc : undefined, out);
}

/**
 * Every object in `paths` (files or directories), in order, Lists flattened. Empty documents are
 * skipped. Throws InputError naming the file and line for an unreadable file, invalid YAML/JSON, or a
 * document that is not an object with apiVersion, kind and metadata.name.
 */
export function readManifests(paths: readonly string[]): ManifestDoc[] {
  const out: ManifestDoc[] = [];
  for (const file of expand(paths)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new InputError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? errMessage(e)}`, { file });
    }
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // BOM
    if (/\.json$/i.test(file)) readJson(file, text, out);
    else readYaml(file, text, out);
  }
  return out;
}
