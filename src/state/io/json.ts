// JSON manifests: a whole document with the line of each List item, a List read item by item (from a
// string, or from a big file in chunks, never holding it whole), and the line of a syntax error. The
// scanners are single linear passes; JSON.parse does the validating.

import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';

import { InputError } from '../../core/errors.ts';
import { errMessage, readBytes } from './files.ts';
import { checkObject, collect, isList, isRecord, type ManifestDoc } from './objects.ts';

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
 * A pause point in the documents a reader yields: the reader has done a bounded piece of work (a chunk
 * of the file scanned, an item parsed) and a caller that must not hold the event loop may hand it back
 * here (state/snapshot.ts loads a snapshot that way). Synchronous callers skip it.
 */
export const PAUSE = undefined;
export type DocOrPause = ManifestDoc | typeof PAUSE;

/**
 * Runs a reader to its end, visiting its documents; returns what the reader returned. A visit that
 * throws ends the reader (its `finally` blocks run) and the error propagates.
 */
export function drain(docs: Generator<DocOrPause, boolean>, visit: (doc: ManifestDoc) => void): boolean {
  for (;;) {
    const r = docs.next();
    if (r.done) return r.value;
    if (r.value !== PAUSE) {
      try {
        visit(r.value);
      } catch (e) {
        docs.return(false);
        throw e;
      }
    }
  }
}

/**
 * A JSON List read item by item: each item is parsed, checked and yielded on its own, so a big
 * snapshot never exists as one tree of raw objects next to the slim state built from it. Returns false
 * (having yielded nothing) when `text` is not a List this path handles; throws InputError like the
 * whole-document path would (that path is re-run on any error, so a syntax error anywhere is reported
 * first, as before).
 */
export function* jsonListDocs(file: string, text: string, start: number): Generator<DocOrPause, boolean> {
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
    for (let i = 0; i < layout.items.length; i++) {
      const span = layout.items[i]!;
      const item: unknown = JSON.parse(text.slice(span.start, span.end));
      if (item === null || item === undefined) continue;
      checkObject(item, file, span.line, `item ${i} of the ${what}`);
      yield { object: item, file, line: span.line };
    }
  } catch (e) {
    // The whole-document path decides which error a file with several problems reports.
    readJson(file, text, () => undefined, start);
    throw e;
  }
  return true;
}

/** How much of a chunk the layout pass scans between two pause points (about 1-5 ms of work). */
const LAYOUT_PIECE_BYTES = 128 * 1024;

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

/**
 * jsonListDocs for a big .json file, in two passes over chunks: the layout, then each item decoded
 * and parsed from its own bytes, with a PAUSE after each chunk of the layout pass. Returns false (no
 * document yielded, only pauses) when the file is not such a List, and on any error re-reads the file
 * as text so that the same error is reported as the whole-text path would.
 */
export function* jsonListChunkedDocs(path: string, file: string): Generator<DocOrPause, boolean> {
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
        // Fed in pieces, each one a pause point: scanning a whole chunk byte by byte takes tens of ms.
        for (let off = 0; off < n; off += LAYOUT_PIECE_BYTES) {
          const piece = chunk.subarray(off, Math.min(n, off + LAYOUT_PIECE_BYTES));
          if (!layout.feed(piece, piece.length, pos + off)) return false;
          yield PAUSE;
        }
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
      for (let i = 0; i < layout.items.length; i++) {
        const span = layout.items[i]!;
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
        if (item === null || item === undefined) continue;
        checkObject(item, file, span.line, `item ${i} of the ${what}`);
        yield { object: item, file, line: span.line };
      }
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
export function readJson(file: string, text: string, out: ManifestDoc[] | ((doc: ManifestDoc) => void), start = 0): void {
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
export function jsonStart(text: string): number {
  const m = /^(?:[ \t]*(?:#[^\n]*)?\r?\n)*[ \t]*(?=[{[])/.exec(text);
  return m ? m[0].length : -1;
}
