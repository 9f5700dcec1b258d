// Read Kubernetes manifests from files and directories: multi-document YAML, JSON, and Lists (`kind: List`
// or `PodList` etc., what `kubectl get -o yaml` prints) flattened into their items. Every object keeps
// the file and 1-based line it came from, so errors and findings can point at it.

import { closeSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode, type ParseOptions, type SchemaOptions, type DocumentOptions } from 'yaml';
import { InputError } from '../core/errors.ts';
import { checkYamlSize, DEFAULT_INPUT_LIMITS, formatBytes, peekFile, readBoundedText, startsLikeJson, STDIN, yamlNarrow, type InputLimits } from './input.ts';

export interface ManifestDoc {
  readonly object: Record<string, unknown>;
  readonly file: string;
  /** 1-based line where the object starts. */
  readonly line: number;
}

const MANIFEST_EXT = /\.(ya?ml|json)$/i;
const STDIN_NAME = '<stdin>';

/**
 * YAML as kubectl reads it (sigs.k8s.io/yaml, go-yaml v2): YAML 1.1 scalars, so `yes`, `no`, `on`,
 * `off`, `y` and `n` are booleans and `0755` is octal, and `<<` merges. go-yaml v2 has no sexagesimal
 * numbers and keeps timestamps, binary, sets and ordered maps as plain values: those tags are left out.
 */
export const KUBECTL_YAML: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  customTags: (tags) =>
    tags.filter((tag) => {
      if (typeof tag !== 'object' || tag === null) return true;
      const name = String((tag as { tag?: string }).tag ?? '');
      const format = (tag as { format?: string }).format;
      return format !== 'TIME' && !/:(timestamp|binary|omap|pairs|set)$/.test(name);
    }),
};

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
    if (p === STDIN) {
      out.push(p);
      continue;
    }
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
  const rejected = kubectlRejects(o);
  if (rejected) throw new InputError(`${what} (${String(o.kind)} ${m.name}): ${rejected}`, { file, line });
}

function describeValue(v: unknown): string {
  if (typeof v === 'boolean') return `the boolean ${v} (in YAML 1.1, as kubectl reads it, yes/no/on/off/y/n are booleans)`;
  if (typeof v === 'number') return `the number ${v}`;
  if (v === null) return 'null';
  return Array.isArray(v) ? 'a list' : `a ${typeof v}`;
}

/** The first value of a string map that is not a string, as "key: description". */
function nonString(map: unknown, path: string): string | undefined {
  if (map === undefined || map === null) return undefined;
  if (!isRecord(map)) return `${path} must be a map of strings, not ${describeValue(map)}`;
  for (const [k, v] of Object.entries(map)) {
    // `key:` with nothing after it is null: kubectl sends it and the API server stores "".
    if (typeof v !== 'string' && v !== null) return `${path}.${k} is ${describeValue(v)}; kubectl refuses it: values here must be strings, quote it`;
  }
  return undefined;
}

/** Every `matchLabels` below `v` (selectors in policies, Services, Deployments), depth-bounded. */
function matchLabelsProblem(v: unknown, path: string, depth: number): string | undefined {
  if (depth > 32 || typeof v !== 'object' || v === null) return undefined;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = matchLabelsProblem(v[i], `${path}[${i}]`, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  for (const [k, x] of Object.entries(v)) {
    const here = `${path}.${k}`;
    const p = k === 'matchLabels' ? nonString(x, here) : matchLabelsProblem(x, here, depth + 1);
    if (p) return p;
  }
  return undefined;
}

const BULK_KINDS = new Set(['Pod', 'Node', 'EndpointSlice']);

/**
 * What kubectl would refuse in an object because of how YAML 1.1 read it: label, annotation,
 * ConfigMap data and matchLabels values that are not strings (`enabled: yes` is a boolean). meshguard
 * says so rather than judge an object the API server would never see.
 */
export function kubectlRejects(o: Record<string, unknown>): string | undefined {
  const m = o.metadata as Record<string, unknown>;
  return (
    nonString(m.labels, 'metadata.labels') ??
    nonString(m.annotations, 'metadata.annotations') ??
    (o.kind === 'ConfigMap' && o.apiVersion === 'v1' ? nonString(o.data, 'data') : undefined) ??
    (o.kind === 'Service' && o.apiVersion === 'v1' && isRecord(o.spec) ? nonString(o.spec.selector, 'spec.selector') : undefined) ??
    // Pods, Nodes and EndpointSlices (most of a state) hold no selectors: not walked.
    (BULK_KINDS.has(String(o.kind)) ? undefined : matchLabelsProblem(o.spec, 'spec', 0))
  );
}

function lineOf(node: YamlNode | null | undefined, lc: LineCounter): number {
  const off = node?.range?.[0];
  return off === undefined ? 1 : lc.linePos(off).line;
}

/** Push a document's objects (itself, or a List's items) with their lines. */
function collect(obj: unknown, file: string, line: number, itemLine: (i: number) => number | undefined, out: ManifestDoc[] | ((doc: ManifestDoc) => void)): void {
  checkObject(obj, file, line);
  const push = typeof out === 'function' ? out : (d: ManifestDoc) => void out.push(d);
  if (!isList(obj)) {
    push({ object: obj, file, line });
    return;
  }
  (obj.items as unknown[]).forEach((item, i) => {
    const at = itemLine(i) ?? line;
    if (item === null || item === undefined) return;
    checkObject(item, file, at, `item ${i} of the ${String(obj.kind)}`);
    // A List inside a List is not something kubectl prints; treat it as an object like any other.
    push({ object: item, file, line: at });
  });
}

/** collect() for a YAML document: lines from the node ranges. */
function collectYaml(obj: unknown, node: YamlNode | null | undefined, file: string, lc: LineCounter, out: ManifestDoc[]): void {
  const itemsNode = isMap(node) ? node.get('items', true) : undefined;
  const itemNodes = isSeq(itemsNode) ? itemsNode.items : [];
  collect(obj, file, lineOf(node, lc), (i) => {
    const n = itemNodes[i] as YamlNode | undefined;
    return n ? lineOf(n, lc) : undefined;
  }, out);
}

function yamlErrorText(e: { message: string }): string {
  // The first line, without the position the InputError prefix already carries.
  const first = e.message.split('\n')[0] ?? e.message;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}

function readYaml(file: string, text: string, out: ManifestDoc[], limits: InputLimits): void {
  const js = jsonStart(text);
  if (js >= 0) {
    const n = out.length;
    try {
      readJson(file, text, out, js);
      return;
    } catch (e) {
      // Not JSON after all (YAML flow style): the YAML parser decides, and reports errors its way.
      if (!(e instanceof InputError) || !e.message.includes('invalid JSON')) throw e;
      out.length = n;
    }
  }
  checkYamlSize(file, Buffer.byteLength(text), limits);
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { ...KUBECTL_YAML, lineCounter: lc, prettyErrors: true, uniqueKeys: false });
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
    collectYaml(obj, doc.contents, file, lc, out);
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

/**
 * Lines (1-based, counted from `start`'s line `firstLine`) where the elements of the top-level object's
 * `items` array start, for text already known to be valid JSON. One linear pass: a YAML parse of a big
 * `kubectl get -o json` would take far longer than JSON.parse itself.
 */
export function jsonItemLines(text: string, start = 0, firstLine = 1): number[] {
  return jsonListLayout(text, start, firstLine)?.items.map((item) => item.line) ?? [];
}

/** Where a JSON List's items are: the `[`/`]` of its `items` array and each element's span and line. */
interface JsonListLayout {
  readonly open: number;
  readonly close: number;
  readonly items: readonly { readonly start: number; readonly end: number; readonly line: number }[];
}

/** Index of the quote that closes the JSON string whose text starts at `from` (or text.length). */
function stringEnd(text: string, from: number): number {
  // indexOf runs natively; most of a snapshot's bytes are inside strings.
  let q = text.indexOf('"', from);
  for (;;) {
    if (q < 0) return text.length;
    let backslashes = 0;
    while (q - 1 - backslashes >= from && text.charCodeAt(q - 1 - backslashes) === 92) backslashes++;
    if (backslashes % 2 === 0) return q;
    q = text.indexOf('"', q + 1);
  }
}

/**
 * The layout of `text` from `start` when it is one JSON object with exactly one top-level `items` array,
 * else undefined. One linear pass; it does not validate the JSON (JSON.parse does).
 */
function jsonListLayout(text: string, start: number, firstLine: number): JsonListLayout | undefined {
  const items: { start: number; end: number; line: number }[] = [];
  let line = firstLine;
  let depth = 0;
  let lastString = '';
  let afterItemsColon = false;
  let inItems = false;
  let expectItem = false;
  let open = -1;
  let close = -1;
  let itemStart = -1;
  let itemLine = 0;
  let i = start;
  while (i < text.length && ' \t\r\n'.includes(text[i]!)) {
    if (text.charCodeAt(i) === 10) line++;
    i++;
  }
  if (text.charCodeAt(i) !== 123 /* { */) return undefined;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      continue;
    }
    if (c === 32 || c === 9 || c === 13) continue;
    if (depth === 0 && close >= 0) return undefined; // something after the top-level object
    if (expectItem) {
      expectItem = false;
      if (c !== 93) {
        itemStart = i;
        itemLine = line;
      } else if (items.length > 0 || itemStart >= 0) {
        return undefined; // "[a,]": invalid, the whole-document path reports it
      }
    }
    if (c === 34) {
      const from = i + 1;
      i = stringEnd(text, from);
      if (depth === 1) lastString = text.slice(from, i);
      afterItemsColon = false;
      continue;
    }
    if (c === 58 /* : */) {
      afterItemsColon = depth === 1 && lastString === 'items';
      continue;
    }
    if (c === 91 /* [ */) {
      depth++;
      if (afterItemsColon && depth === 2) {
        if (open >= 0) return undefined; // a second "items": JSON.parse keeps the last, leave it to that path
        open = i;
        inItems = true;
        expectItem = true;
      }
    } else if (c === 123 /* { */) {
      depth++;
    } else if (c === 93 || c === 125 /* ] } */) {
      depth--;
      if (inItems && depth === 1) {
        inItems = false;
        if (itemStart >= 0) items.push({ start: itemStart, end: i, line: itemLine });
        itemStart = -1;
        close = i;
      }
      if (depth === 0) close = Math.max(close, 0);
      if (depth < 0) return undefined;
    } else if (c === 44 /* , */) {
      if (inItems && depth === 2) {
        if (itemStart >= 0) items.push({ start: itemStart, end: i, line: itemLine });
        itemStart = -1;
        expectItem = true;
      }
    }
    afterItemsColon = false;
  }
  if (open < 0 || depth !== 0) return undefined;
  return { open, close, items };
}

/**
 * A JSON List read item by item: each item is parsed, checked and handed to `visit` on its own, so a big
 * snapshot never exists as one tree of raw objects next to the slim state built from it. Returns false
 * (having visited nothing) when `text` is not a List this path handles; throws InputError like the
 * whole-document path would (that path is re-run on any error, so a syntax error anywhere is reported
 * first, as before).
 */
function readJsonList(file: string, text: string, visit: (doc: ManifestDoc) => void, start: number): boolean {
  // Only JSON whitespace before the object (trimStart would also skip what JSON.parse rejects).
  let first = start;
  while (first < text.length && ' \t\r\n'.includes(text[first]!)) first++;
  const line = countLines(text, first);
  const layout = jsonListLayout(text, first, line);
  if (!layout) return false;
  let wrapper: unknown;
  try {
    wrapper = JSON.parse(text.slice(first, layout.open + 1) + text.slice(layout.close));
  } catch {
    return false;
  }
  if (!isRecord(wrapper) || !isList(wrapper)) return false;
  try {
    checkObject(wrapper, file, line);
    const what = String(wrapper.kind);
    layout.items.forEach((span, i) => {
      const item: unknown = JSON.parse(text.slice(span.start, span.end));
      if (item === null || item === undefined) return;
      checkObject(item, file, span.line, `item ${i} of the ${what}`);
      visit({ object: item, file, line: span.line });
    });
  } catch (e) {
    // The whole-document path decides which error a file with several problems reports.
    readJson(file, text, () => undefined, start);
    throw e;
  }
  return true;
}

/**
 * .json files at least `fromBytes` long are read as a List in chunks of `chunkBytes`, never as one
 * string: a 50k-pod snapshot is 60 MB of text, which the process would otherwise hold (next to the
 * state being built from it) until the load ends. Exported for tests, which lower both; `listsRead`
 * counts the files read that way.
 */
export const chunkedJsonList = { fromBytes: 8 * 1024 * 1024, chunkBytes: 1024 * 1024, listsRead: 0 };

/**
 * jsonListLayout over bytes fed in chunks: the same decisions, with offsets in bytes (UTF-8 bytes of
 * non-ASCII characters are never quotes, brackets, commas or newlines, so structure is found the same).
 */
const ITEMS = Buffer.from('items');

class ChunkedListLayout {
  line = 1;
  /** Byte offset and line of the top-level `{`, once seen. */
  first = -1;
  firstLine = 0;
  open = -1;
  close = -1;
  readonly items: { start: number; end: number; line: number }[] = [];
  #failed = false;
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** In a depth-1 string: its bytes so far, and whether they are a prefix of `items`. */
  #keyAt = -1;
  #keyIsItems = false;
  #lastWasItems = false;
  #afterItemsColon = false;
  #inItems = false;
  #expectItem = false;
  #itemStart = -1;
  #itemLine = 0;

  /** Feeds `buf[0, n)`, the bytes at file offset `base`; false once the text is not such a List. */
  feed(buf: Buffer, n: number, base: number): boolean {
    if (this.#failed) return false;
    for (let k = 0; k < n; k++) {
      const c = buf[k]!;
      const at = base + k;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === 92) this.#escaped = true;
        else if (c === 34) {
          this.#inString = false;
          if (this.#keyAt >= 0) this.#lastWasItems = this.#keyIsItems && this.#keyAt === ITEMS.length;
          this.#keyAt = -1;
          continue;
        }
        // The raw bytes are compared, as jsonListLayout compares the raw text (an escape is not `items`).
        if (this.#keyAt >= 0) this.#keyIsItems &&= this.#keyAt < ITEMS.length && c === ITEMS[this.#keyAt];
        if (this.#keyAt >= 0) this.#keyAt++;
        continue;
      }
      if (c === 10) {
        this.line++;
        continue;
      }
      if (c === 32 || c === 9 || c === 13) continue;
      if (this.first < 0) {
        if (c !== 123) return this.#fail();
        this.first = at;
        this.firstLine = this.line;
      }
      if (this.#depth === 0 && this.close >= 0) return this.#fail(); // something after the top-level object
      if (this.#expectItem) {
        this.#expectItem = false;
        if (c !== 93) {
          this.#itemStart = at;
          this.#itemLine = this.line;
        } else if (this.items.length > 0 || this.#itemStart >= 0) {
          return this.#fail();
        }
      }
      if (c === 34) {
        this.#inString = true;
        // Only depth-1 strings matter (the keys of the List object).
        this.#keyAt = this.#depth === 1 ? 0 : -1;
        this.#keyIsItems = true;
        if (this.#depth === 1) this.#lastWasItems = false;
        this.#afterItemsColon = false;
        continue;
      }
      if (c === 58) {
        this.#afterItemsColon = this.#depth === 1 && this.#lastWasItems;
        continue;
      }
      if (c === 91) {
        this.#depth++;
        if (this.#afterItemsColon && this.#depth === 2) {
          if (this.open >= 0) return this.#fail(); // a second "items"
          this.open = at;
          this.#inItems = true;
          this.#expectItem = true;
        }
      } else if (c === 123) {
        this.#depth++;
      } else if (c === 93 || c === 125) {
        this.#depth--;
        if (this.#inItems && this.#depth === 1) {
          this.#inItems = false;
          if (this.#itemStart >= 0) this.items.push({ start: this.#itemStart, end: at, line: this.#itemLine });
          this.#itemStart = -1;
          this.close = at;
        }
        if (this.#depth === 0) this.close = Math.max(this.close, 0);
        if (this.#depth < 0) return this.#fail();
      } else if (c === 44) {
        if (this.#inItems && this.#depth === 2) {
          if (this.#itemStart >= 0) this.items.push({ start: this.#itemStart, end: at, line: this.#itemLine });
          this.#itemStart = -1;
          this.#expectItem = true;
        }
      }
      this.#afterItemsColon = false;
    }
    return true;
  }

  /** Whether the whole text was one object with exactly one top-level `items` array. */
  complete(): boolean {
    return !this.#failed && this.first >= 0 && this.open >= 0 && this.#depth === 0 && !this.#inString;
  }

  #fail(): false {
    this.#failed = true;
    return false;
  }
}

/** A file's size, or -1 when it cannot be read (the text path then reports why). */
function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/** Reads `length` bytes of the file at `position`. */
function readBytes(fd: number, position: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, out, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return out.subarray(0, got);
}

/**
 * readJsonList for a big .json file, in two passes over chunks: the layout, then each item decoded
 * and parsed from its own bytes. Returns false (having visited nothing) when the file is not such a
 * List, and on any error re-reads the file as text so that the same error is reported as the
 * whole-text path would.
 */
function readJsonListChunked(path: string, file: string, visit: (doc: ManifestDoc) => void): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false; // the text path reports why it cannot be read
  }
  try {
    const size = statSync(path).size;
    const chunk = Buffer.allocUnsafe(Math.max(1, chunkedJsonList.chunkBytes));
    const layout = new ChunkedListLayout();
    // A UTF-8 byte order mark is skipped, as the text path drops U+FEFF.
    const bom = readBytes(fd, 0, 3);
    let pos = bom.length === 3 && bom[0] === 0xef && bom[1] === 0xbb && bom[2] === 0xbf ? 3 : 0;
    const textStart = pos;
    try {
      for (;;) {
        const n = readSync(fd, chunk, 0, chunk.length, pos);
        if (n === 0) break;
        if (!layout.feed(chunk, n, pos)) return false;
        pos += n;
      }
    } catch {
      return false; // a read error: the text path reports it
    }
    if (!layout.complete() || pos !== size) return false;
    const text = (from: number, to: number): string => readBytes(fd, from, to - from).toString('utf8');
    let wrapper: unknown;
    try {
      wrapper = JSON.parse(text(layout.first, layout.open + 1) + text(layout.close, size));
    } catch {
      return false;
    }
    if (!isRecord(wrapper) || !isList(wrapper)) return false;
    try {
      checkObject(wrapper, file, layout.firstLine);
      const what = String(wrapper.kind);
      // Items in file order, each decoded from its own bytes (copied when it spans chunks).
      let base = textStart;
      let n = 0;
      const next = (): void => {
        base += n;
        n = readSync(fd, chunk, 0, chunk.length, base);
        if (n === 0) throw new InputError('changed while it was read', { file });
      };
      next();
      layout.items.forEach((span, i) => {
        while (span.start >= base + n) next();
        let body: string;
        if (span.end <= base + n) {
          body = chunk.toString('utf8', span.start - base, span.end - base);
        } else {
          const parts = [Buffer.from(chunk.subarray(span.start - base, n))];
          for (;;) {
            next();
            if (span.end <= base + n) break;
            parts.push(Buffer.from(chunk.subarray(0, n)));
          }
          parts.push(chunk.subarray(0, span.end - base));
          body = Buffer.concat(parts).toString('utf8');
        }
        const item: unknown = JSON.parse(body);
        if (item === null || item === undefined) return;
        checkObject(item, file, span.line, `item ${i} of the ${what}`);
        visit({ object: item, file, line: span.line });
      });
      chunkedJsonList.listsRead++;
    } catch (e) {
      // Report what the whole-text path would: its error, or this one.
      let whole: string;
      try {
        whole = readFileSync(path, 'utf8');
      } catch (r) {
        throw new InputError(`cannot read: ${(r as NodeJS.ErrnoException).code ?? errMessage(r)}`, { file });
      }
      if (whole.charCodeAt(0) === 0xfeff) whole = whole.slice(1);
      readJson(file, whole, () => undefined, 0);
      throw e;
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

function countLines(text: string, end: number): number {
  let n = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < end; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** Parse `text` (from `start`) as JSON and collect it; throws InputError with the line on bad JSON. */
function readJson(file: string, text: string, out: ManifestDoc[] | ((doc: ManifestDoc) => void), start = 0): void {
  const body = start > 0 ? text.slice(start) : text;
  if (body.trim() === '') return;
  let obj: unknown;
  try {
    obj = JSON.parse(body);
  } catch (e) {
    const msg = errMessage(e);
    // V8 does not always say where: then find the offset with a small scanner.
    const pos = /position (\d+)/.exec(msg);
    const offset = pos ? Number(pos[1]) : jsonErrorOffset(body);
    const short = msg
      .replace(/, ".*" is not valid JSON$/s, '')
      .replace(/ in JSON at position.*$/s, '')
      .replace(/\s+/g, ' ');
    throw new InputError(`invalid JSON: ${short}`, { file, line: countLines(text, start + offset) });
  }
  const first = start + (body.length - body.trimStart().length);
  const line = countLines(text, first);
  const itemLines = isRecord(obj) && isList(obj) ? jsonItemLines(text, first, line) : [];
  collect(obj, file, line, (i) => itemLines[i], out);
}

/**
 * Where a JSON document starts in a .yaml file (after blank and comment lines), or -1: JSON is YAML, and
 * JSON.parse is much faster than a YAML parse for a big snapshot.
 */
function jsonStart(text: string): number {
  const m = /^(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*(?=[{[])/.exec(text);
  return m ? m[0].length : -1;
}

/**
 * Every object in `paths` (files, directories, or "-" for standard input, named "<stdin>"), in order,
 * Lists flattened. Empty documents are skipped. Throws InputError naming the file and line for an
 * unreadable file, invalid YAML/JSON, or a document that is not an object with apiVersion, kind and
 * metadata.name.
 */
export function readManifests(paths: readonly string[], limits: InputLimits = DEFAULT_INPUT_LIMITS): ManifestDoc[] {
  const out: ManifestDoc[] = [];
  forEachManifest(paths, (d) => void out.push(d), limits);
  return out;
}

/**
 * readManifests, handing each object to `visit` as it is read. A .json List is parsed item by item, so
 * a caller that keeps only a slim copy of each object never holds every raw object at once (a 50k-pod
 * snapshot is hundreds of MB of raw objects). Throws the same InputErrors, possibly after some visits.
 * Every input is bounded (src/state/input.ts): devices are refused, files and streams over
 * `limits.maxBytes` and YAML over `limits.maxYamlBytes` too.
 */
export function forEachManifest(paths: readonly string[], visit: (doc: ManifestDoc) => void, limits: InputLimits = DEFAULT_INPUT_LIMITS): void {
  for (const path of expand(paths)) {
    const file = path === STDIN ? STDIN_NAME : path;
    if (path !== STDIN && /\.json$/i.test(file)) {
      const size = sizeOf(path);
      if (size > limits.maxBytes) {
        throw new InputError(`larger than ${formatBytes(limits.maxBytes)}: refused (raise the bound with --max-input-bytes)`, { file });
      }
      if (size >= chunkedJsonList.fromBytes && readJsonListChunked(path, file, visit)) continue;
    }
    if (path !== STDIN && !/\.json$/i.test(file)) {
      // A YAML file over its bound is refused without reading it (unless it holds JSON).
      const size = sizeOf(path);
      if (size > limits.maxYamlBytes && !startsLikeJson(peekFile(path, 64 * 1024))) checkYamlSize(file, size, limits);
    }
    const text = readBoundedText(path, limits.maxBytes, undefined, /\.json$/i.test(file) ? undefined : yamlNarrow(limits));
    if (/\.json$/i.test(file)) {
      if (!readJsonList(file, text, visit, 0)) readJson(file, text, visit);
    } else {
      // YAML (or JSON in a .yaml file, which may fall back to YAML): whole documents, then visited.
      const docs: ManifestDoc[] = [];
      readYaml(file, text, docs, limits);
      for (const d of docs) visit(d);
    }
  }
}
