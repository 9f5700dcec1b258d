// Cilium's DNS name matching (`toFQDNs` and `rules.dns`: matchName, matchPattern) without regular
// expressions. Patterns come from object content, and a backtracking regex built from one
// (`*a*a*a*a*a*a*a*a*a*a*a*a*b` against forty `a`s) ran for minutes and froze the process. This
// matcher runs in time linear in the name and the pattern, whatever they hold.
//
// Semantics (Cilium pkg/fqdn/matchpattern): names compare case-insensitively, surrounding blanks and a
// trailing dot ignored; matchName is exact; matchPattern `*` alone matches every name; otherwise `*`
// matches any run (possibly empty) of DNS characters [-a-z0-9_] within one label, and a leading `**.`
// matches one or more whole labels.

import { checkBudget } from '../core/budget.ts';
import { compiledDnsPatterns as compiled } from './memo.ts';

/** Longer names and patterns are refused by the CRD validation (maxLength 255): they match nothing. */
export const MAX_DNS_TEXT = 255;

/** Characters `*` may stand for: one DNS label's characters, never the dot. */
function isLabelChar(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || // a-z
    (c >= 0x30 && c <= 0x39) || // 0-9
    c === 0x2d || // -
    c === 0x5f // _
  );
}

/** Characters a pattern may hold (the CRD's pattern): anything else makes it match nothing. */
function isPatternChar(c: number): boolean {
  return isLabelChar(c) || c === 0x2a /* * */ || c === 0x2e; /* . */
}

export function normalizeDnsName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** A compiled pattern: its labels, each split at `*` into literal segments. */
export interface CompiledPattern {
  /** Leading `**.`: one or more labels before `labels`. */
  readonly anyLabelsBefore: boolean;
  readonly labels: readonly (readonly string[])[];
  /** KMP failure tables, per label and segment (middle segments only are searched). */
  readonly failures: readonly (readonly (Int32Array | undefined)[])[];
}

/** Prefix function of Knuth-Morris-Pratt: failure[i] = length of the longest proper border of s[0..i]. */
function failureTable(s: string): Int32Array {
  const f = new Int32Array(s.length);
  let k = 0;
  for (let i = 1; i < s.length; i++) {
    while (k > 0 && s.charCodeAt(i) !== s.charCodeAt(k)) k = f[k - 1]!;
    if (s.charCodeAt(i) === s.charCodeAt(k)) k++;
    f[i] = k;
  }
  return f;
}

/**
 * First position p in [from, limit] where `seg` occurs in `text`, or -1; text[from..p) must also hold
 * only label characters, which the caller guarantees by passing `limit` = the first other character.
 * Linear in the text scanned (Knuth-Morris-Pratt).
 */
function findSegment(text: string, seg: string, failure: Int32Array, from: number, limit: number, end: number): number {
  let k = 0;
  for (let i = from; i < end; i++) {
    const c = text.charCodeAt(i);
    while (k > 0 && c !== seg.charCodeAt(k)) k = failure[k - 1]!;
    if (c === seg.charCodeAt(k)) k++;
    if (k === seg.length) {
      const start = i - seg.length + 1;
      return start <= limit ? start : -1;
    }
    // No occurrence can start at or before `limit` any more.
    if (i - k + 1 > limit) return -1;
  }
  return -1;
}

function nextNonLabelChar(text: string, from: number, end: number): number {
  for (let i = from; i < end; i++) if (!isLabelChar(text.charCodeAt(i))) return i;
  return end;
}

/**
 * Does one label of the name, text[start..end), match one pattern label (its `*`-separated segments)?
 * Greedy leftmost placement of the middle segments is exact here because the segments hold only label
 * characters (the pattern alphabet): an earlier placement never leaves a character a later one would
 * have covered. Linear: one pass for the alphabet, then each segment searched once from where the
 * previous one ended (Knuth-Morris-Pratt).
 */
function labelMatches(text: string, start: number, end: number, segs: readonly string[], failures: readonly (Int32Array | undefined)[]): boolean {
  const first = segs[0]!;
  if (segs.length === 1) return end - start === first.length && text.startsWith(first, start);
  // Pattern literals hold only label characters and `*` stands only for them: a label with any other
  // character cannot match. Checked once, so the gaps need no check of their own.
  if (nextNonLabelChar(text, start, end) !== end) return false;
  const last = segs[segs.length - 1]!;
  if (end - start < first.length + last.length) return false;
  if (!text.startsWith(first, start) || !text.startsWith(last, end - last.length)) return false;
  let pos = start + first.length;
  const stop = end - last.length;
  for (let i = 1; i < segs.length - 1; i++) {
    const seg = segs[i]!;
    if (seg.length === 0) continue; // `**` inside a label: the same as one `*`
    const at = findSegment(text, seg, failures[i]!, pos, stop, stop);
    if (at < 0) return false;
    pos = at + seg.length;
  }
  return true;
}

const MAX_COMPILED = 10_000;

/** The compiled form of a normalized pattern, or null when it matches nothing. */
function compile(p: string): CompiledPattern | null {
  let hit = compiled.get(p);
  if (hit !== undefined) return hit;
  hit = null;
  let valid = p.length <= MAX_DNS_TEXT;
  for (let i = 0; valid && i < p.length; i++) valid = isPatternChar(p.charCodeAt(i));
  if (valid) {
    const anyLabelsBefore = p.startsWith('**.');
    const body = anyLabelsBefore ? p.slice(3) : p;
    const labels = body.split('.').map((l) => l.split('*'));
    const failures = labels.map((segs) => segs.map((s, i) => (i > 0 && i < segs.length - 1 && s.length > 0 ? failureTable(s) : undefined)));
    hit = { anyLabelsBefore, labels, failures };
  }
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(p, hit);
  return hit;
}

/** Does the normalized name `n` match the compiled pattern? Linear in the name and the pattern. */
function patternMatches(c: CompiledPattern, n: string): boolean {
  // Label boundaries of the name, from the end: the pattern's labels align with the last ones.
  const k = c.labels.length;
  let end = n.length;
  for (let li = k - 1; li >= 0; li--) {
    if (end < 0) return false; // fewer labels than the pattern
    const dot = end > 0 ? n.lastIndexOf('.', end - 1) : -1;
    if (!labelMatches(n, dot + 1, end, c.labels[li]!, c.failures[li]!)) return false;
    end = dot; // -1 once the name's first label is used
  }
  if (!c.anyLabelsBefore) return end < 0;
  // `**.`: at least one more label, each non-empty and of label characters only.
  if (end <= 0) return false;
  let labelLength = 0;
  for (let i = 0; i < end; i++) {
    const ch = n.charCodeAt(i);
    if (ch === 0x2e) {
      if (labelLength === 0) return false;
      labelLength = 0;
    } else if (isLabelChar(ch)) {
      labelLength++;
    } else {
      return false;
    }
  }
  return labelLength > 0;
}

/**
 * Cilium DNS name matching: matchName is exact (case-insensitive, trailing dot ignored); in matchPattern
 * `*` alone matches every name, otherwise `*` matches any run of DNS characters within one label, and a
 * leading `**.` matches one or more labels.
 */
export function dnsNameMatches(rule: { readonly matchName?: string; readonly matchPattern?: string }, name: string): boolean {
  checkBudget();
  const n = normalizeDnsName(name);
  if (n.length > MAX_DNS_TEXT) return false;
  if (rule.matchName !== undefined && normalizeDnsName(rule.matchName) === n) return true;
  if (rule.matchPattern === undefined) return false;
  const p = normalizeDnsName(rule.matchPattern);
  if (p === '*') return true;
  const c = compile(p);
  return c !== null && patternMatches(c, n);
}
