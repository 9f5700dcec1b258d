// Reading files and streams with a size bound. Every input meshguard reads from a path (states,
// manifests, the config, trace queries) comes through here: a regular file larger than the bound is
// refused before it is read, a pipe, socket or standard input is read until it ends or passes the
// bound, and devices are refused outright (`--state /dev/zero` used to grow to gigabytes). YAML costs
// about 100 times its size in memory and 1.4 s per MB to parse, so it has its own, smaller bound.

import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { isatty } from 'node:tty';

import { InputError } from '../../core/errors.ts';

export interface InputLimits {
  /** Largest file or stream read, in bytes (`--max-input-bytes`). */
  readonly maxBytes: number;
  /** Largest YAML text parsed, in bytes (`--max-yaml-bytes`); JSON may go up to maxBytes. */
  readonly maxYamlBytes: number;
}

const MiB = 1024 * 1024;
export const DEFAULT_INPUT_LIMITS: InputLimits = { maxBytes: 1024 * MiB, maxYamlBytes: 16 * MiB };

/** The path that means standard input, as with `kubectl apply -f -`. */
export const STDIN = '-';

const UNITS: Record<string, number> = { '': 1, k: 1000, ki: 1024, m: 1e6, mi: MiB, g: 1e9, gi: 1024 * MiB };

/** "16Mi", "1Gi", "500M", "1048576": a byte count as Kubernetes quantities spell it. */
export function parseByteSize(flag: string, text: string): number {
  const m = /^\s*(\d{1,15})\s*([kKmMgG]i?)?\s*$/.exec(text);
  if (!m) throw new InputError(`${flag}: not a size (e.g. 16Mi, 1Gi, 1048576): "${text}"`);
  const n = Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!;
  if (n < 1024) throw new InputError(`${flag}: must be at least 1Ki (got ${text})`);
  return n;
}

export function formatBytes(n: number): string {
  if (n % (1024 * MiB) === 0) return `${n / (1024 * MiB)}Gi`;
  if (n % MiB === 0) return `${n / MiB}Mi`;
  if (n % 1024 === 0) return `${n / 1024}Ki`;
  return `${n} bytes`;
}

function what(path: string): string {
  return path === STDIN ? '<stdin>' : path;
}

function kindOfStats(st: Stats): string | undefined {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  return undefined;
}

/**
 * The bytes of a file, a pipe or standard input, refusing devices and anything over `maxBytes`.
 * Throws InputError naming the input and the flag that raises the bound.
 */
export function readBounded(path: string, maxBytes: number, flag = '--max-input-bytes', narrow?: Narrow): Buffer {
  const name = what(path);
  let fd: number;
  try {
    fd = path === STDIN ? 0 : openSync(path, 'r');
  } catch (e) {
    throw new InputError(`cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: name });
  }
  try {
    const st = fstatSync(fd);
    const refused = kindOfStats(st);
    // A terminal is a character device too: `check -` typed by hand ends with Ctrl-D.
    if (refused && !(path === STDIN && isatty(fd))) throw new InputError(`is ${refused}, not a file or a pipe`, { file: name });
    let bound = { bytes: maxBytes, flag, what: '' };
    let decided = false;
    const tooBig = (): InputError =>
      new InputError(`${bound.what}larger than ${formatBytes(bound.bytes)}: refused (raise the bound with ${bound.flag})`, { file: name });
    if (st.isFile() && st.size > maxBytes) throw tooBig();
    // Regular files: read what is there (it may grow meanwhile); pipes: until the end or the bound.
    const chunks: Buffer[] = [];
    let total = 0;
    const chunk = Buffer.allocUnsafe(st.isFile() ? Math.min(Math.max(st.size, 1), 16 * MiB) + 1 : 1 * MiB);
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          // A non-blocking stdin with nothing yet: wait a little rather than spin a core.
          Atomics.wait(PAUSE, 0, 0, 5);
          continue;
        }
        if (code === 'EOF') break;
        throw new InputError(`cannot read: ${code ?? (e as Error).message}`, { file: name });
      }
      if (n === 0) break;
      total += n;
      chunks.push(Buffer.from(chunk.subarray(0, n)));
      // A stream's first bytes tell what it is (YAML is bounded much lower than JSON): asked again
      // until they do (blanks and comments first say nothing), on up to the first 64 KiB.
      if (narrow && !decided && !st.isFile()) {
        const head = Buffer.concat(chunks, Math.min(total, 64 * 1024)).subarray(0, Math.min(total, 64 * 1024));
        const verdict = narrow(head);
        if (verdict !== undefined && verdict !== 'json' && verdict.bytes < bound.bytes) bound = verdict;
        // Decided once the bytes tell, or after 64 KiB of nothing but blanks and comments.
        if (verdict !== undefined || total >= 64 * 1024) decided = true;
      }
      if (total > bound.bytes) throw tooBig();
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
  } finally {
    if (path !== STDIN) closeSync(fd);
  }
}

/**
 * A smaller bound for a stream, decided from its first bytes: a bound, 'json' (the general bound
 * stands), or undefined when the bytes so far do not tell yet.
 */
export type Narrow = (head: Buffer) => { bytes: number; flag: string; what: string } | 'json' | undefined;

/** Whether text that starts like `head` is JSON (true), YAML (false), or cannot be told yet (undefined). */
export function streamKind(head: Buffer): boolean | undefined {
  let i = 0;
  while (i < head.length) {
    const c = head[i]!;
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
    else if (c === 0x23) {
      while (i < head.length && head[i] !== 0x0a) i++;
    } else if (c === 0xef && head[i + 1] === 0xbb && head[i + 2] === 0xbf) i += 3;
    else return c === 0x7b || c === 0x5b; // { [
  }
  return undefined;
}

/** Whether text that starts like `head` is JSON, or may be (nothing decisive yet: the larger bound). */
export function startsLikeJson(head: Buffer): boolean {
  return streamKind(head) !== false;
}

/** Narrow for inputs that may be YAML or JSON: a stream that does not start like JSON is YAML. */
export function yamlNarrow(limits: InputLimits): Narrow {
  return (head) => {
    const kind = streamKind(head);
    if (kind === undefined) return undefined;
    return kind ? 'json' : { bytes: limits.maxYamlBytes, flag: '--max-yaml-bytes', what: 'YAML ' };
  };
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** The text of a file, a pipe or standard input (UTF-8, without a byte order mark), bounded. */
export function readBoundedText(path: string, maxBytes: number, flag?: string, narrow?: Narrow): string {
  const text = readBounded(path, maxBytes, flag, narrow).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The first `n` bytes of a regular file (fewer if it is shorter); empty when it cannot be read. */
export function peekFile(path: string, n: number): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buf = Buffer.allocUnsafe(n);
    const got = readSync(fd, buf, 0, n, 0);
    return buf.subarray(0, got);
  } catch {
    return Buffer.alloc(0);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Throws unless YAML of `bytes` may be parsed under `limits`. */
export function checkYamlSize(file: string, bytes: number, limits: InputLimits): void {
  if (bytes > limits.maxYamlBytes) {
    throw new InputError(
      `YAML larger than ${formatBytes(limits.maxYamlBytes)}: refused, parsing it would take minutes and gigabytes (write the state as JSON, e.g. \`kubectl get -o json\` or \`meshguard snapshot\`, or raise the bound with --max-yaml-bytes)`,
      { file },
    );
  }
}
