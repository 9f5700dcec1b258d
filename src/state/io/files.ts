// Which files a list of paths means, and reads of parts of them: a path as given, a directory's
// manifests found recursively, "-" for standard input. Whole inputs are read with a bound by ./input.ts.

import { readdirSync, readSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { InputError } from '../../core/errors.ts';
import { STDIN } from './input.ts';

const MANIFEST_EXT = /\.(ya?ml|json)$/i;

export function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Files to read, in order: a file as given; a directory's *.yaml, *.yml and *.json files, recursively,
 * sorted by path. Entries starting with "." are skipped (editor files, and the `..data` links of a
 * mounted ConfigMap volume, which would otherwise be read twice).
 */
export function expand(paths: readonly string[]): string[] {
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

/** A file's size, or -1 when it cannot be read (the text path then reports why). */
export function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/** Reads `length` bytes of the file at `position`. */
export function readBytes(fd: number, position: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, out, got, length - got, position + got);
    if (n === 0) break;
    got += n;
  }
  return out.subarray(0, got);
}
