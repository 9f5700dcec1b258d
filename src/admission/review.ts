// AdmissionReview <-> meshguard: the request becomes a Change (objects already slimmed by the state
// transform), and a Decision becomes the AdmissionResponse that kubectl shows to the user.

import { defaultDocsBaseUrl, docsLinks, type DocsLinks } from '../config/docs-links.ts';
import { buildChange, isRawObject as isRaw, type Change, type UserInfo } from '../core/change.ts';
import type { Decision } from '../core/decision.ts';
import type { ActedFinding } from '../core/finding.ts';
import { slimRequestObject } from '../state/slim.ts';
import { ruleById } from '../rules/registry.ts';
import { detailOf, withFix } from '../verdict/render.ts';
import type { AdmissionReview, AdmissionReviewRequest } from './schema.ts';

/** Raised for a schema-valid review that still cannot be read; the server answers 400. */
export class ReviewError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReviewError';
  }
}

type Raw = Record<string, unknown>;

/**
 * The Change for one AdmissionReview (already validated against admissionReviewSchema), built by the one
 * Change builder with the state's slimming (src/state/slim.ts).
 */
export function toChange(review: AdmissionReview): Change {
  const req = review.request;
  if (!isRaw(req) || typeof req.uid !== 'string' || !isRaw(req.kind)) throw new ReviewError('request is missing');
  return buildChange(
    {
      uid: req.uid,
      operation: req.operation,
      gvk: { group: req.kind.group ?? '', version: req.kind.version ?? '', kind: req.kind.kind },
      ...(req.namespace !== undefined ? { namespace: req.namespace } : {}),
      ...(req.name ? { name: req.name } : {}),
      object: { sent: req.object },
      oldObject: { sent: req.oldObject },
      dryRun: req.dryRun === true,
      userInfo: userInfoOf(req.userInfo),
    },
    slimRequestObject,
  );
}

function userInfoOf(u: AdmissionReviewRequest['userInfo']): UserInfo {
  if (!u) return {};
  return {
    ...(typeof u.username === 'string' ? { username: u.username } : {}),
    ...(typeof u.uid === 'string' ? { uid: u.uid } : {}),
    ...(Array.isArray(u.groups) ? { groups: u.groups.filter((g) => typeof g === 'string') } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------
// Response

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly status?: { readonly code: number; readonly reason: string; readonly message: string };
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}
export interface AdmissionReviewResponse {
  readonly apiVersion: 'admission.k8s.io/v1';
  readonly kind: 'AdmissionReview';
  readonly response: AdmissionResponse;
}

/** Limits of the response, from the apiserver's documented guidance. */
export const LIMITS = {
  /** Characters per warning (the apiserver may cut longer ones). */
  warningChars: 120,
  /** Total bytes of all warnings: strictly below 4 KiB. */
  warningsBytes: 4096 - 1,
  /** Characters of the deny message that kubectl prints. */
  denyMessageChars: 4000,
  /** Characters of one audit annotation value. */
  auditValueChars: 1000,
} as const;

const ELLIPSIS = '…';

/** One line, no control characters (warnings travel as HTTP headers; messages are printed by kubectl). */
function oneLine(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/ {2,}/g, ' ').trim();
}

/** Cut `s` to at most `max` characters (code points), marking the cut with an ellipsis. */
export function truncate(s: string, max: number): string {
  if (s.length <= max) return s; // UTF-16 units never undercount code points
  const cps = Array.from(s);
  if (cps.length <= max) return s;
  if (max <= 0) return '';
  return cps.slice(0, max - 1).join('').trimEnd() + ELLIPSIS;
}

const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');

/** "ns/a, ns/b and 12 more" */
function victimsText(f: ActedFinding): string {
  const v = f.victims ?? [];
  if (v.length === 0) return '';
  // The rule's message table says whether its message names the victims itself: do not say it twice.
  if (detailOf(f, ruleById(f.rule)?.messages) !== 'list-victims') return '';
  const more = (f.victimCount ?? v.length) - v.length;
  return ` Affected: ${v.join(', ')}${more > 0 ? ` and ${more} more` : ''}.`;
}

/** Links every rule page under the default base (package.json homepage); the config may move it. */
const DEFAULT_LINKS: DocsLinks = docsLinks(defaultDocsBaseUrl());

/** How a response is worded besides the decision itself. */
export interface ResponseOptions {
  /** Rule id -> its page (default: the project's pages; `docs.baseUrl` in the config). */
  readonly docsUrl?: DocsLinks;
}

function denyLine(f: ActedFinding, budget: number, link: string): string {
  const head = `[${f.rule}] `;
  const body = oneLine(withFix({ message: `${f.message}${victimsText(f)}`, fix: f.fix }));
  // The link survives truncation: the reason and the link matter more than the fix's tail. Only when
  // so many rules deny that the link would leave no room for the reason is it left out.
  const tail = budget - head.length - ` Docs: ${link}`.length >= 20 ? ` Docs: ${link}` : '';
  return head + truncate(body, Math.max(budget - head.length - tail.length, 20)) + tail;
}

/**
 * The message kubectl prints for a denial: every denying rule with its reason and fix, one per line.
 * Long findings are cut so that every rule id still appears.
 */
export function denyMessage(denying: readonly ActedFinding[], docsUrl: DocsLinks = DEFAULT_LINKS): string {
  const header = 'meshguard denied this request:';
  if (denying.length === 0) return header.slice(0, -1);
  const perFinding = Math.floor((LIMITS.denyMessageChars - header.length) / denying.length) - 1;
  return [header, ...denying.map((f) => denyLine(f, perFinding, docsUrl(f.rule)))].join('\n');
}

/** At most this many warning lines per finding, so that one long finding cannot crowd out the others. */
const MAX_LINES_PER_WARNING = 4;
const CONTINUATION = '  ';

/**
 * A finding as kubectl `Warning:` lines: the whole message and fix, wrapped at word boundaries into lines
 * of at most LIMITS.warningChars (the apiserver's limit per warning) instead of being cut after 120
 * characters, then the link to the rule's page on a line of its own, so that wrapping or cutting a long
 * message never breaks or drops the link. Continuation lines are indented.
 */
export function warningLines(f: ActedFinding, docsUrl: DocsLinks = DEFAULT_LINKS): string[] {
  const tag = f.wouldDeny ? '(audit: would be denied) ' : f.preexisting ? '(pre-existing) ' : '';
  const link = linkLine(docsUrl(f.rule));
  const text = wrapWarning(`[${f.rule}] ${tag}${withFix(f)}`, link ? MAX_LINES_PER_WARNING - 1 : MAX_LINES_PER_WARNING);
  return link ? [...text, link] : text;
}

/** "  Docs: <url>", or the bare URL when that is too long; nothing when even the URL does not fit a line. */
function linkLine(url: string): string | undefined {
  const line = `${CONTINUATION}Docs: ${oneLine(url)}`;
  if (codePoints(line) <= LIMITS.warningChars) return line;
  const bare = CONTINUATION + oneLine(url);
  return codePoints(bare) <= LIMITS.warningChars ? bare : undefined;
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdbff || i + 1 >= s.length) n++;
    else {
      const d = s.charCodeAt(i + 1);
      n++;
      if (d >= 0xdc00 && d <= 0xdfff) i++; // a surrogate pair is one code point
    }
  }
  return n;
}

/** One warning's text as lines of at most LIMITS.warningChars, wrapped at words, indented after the first. */
function wrapWarning(raw: string, maxLines: number = MAX_LINES_PER_WARNING): string[] {
  const text = oneLine(raw);
  const max = LIMITS.warningChars;
  const lines: string[] = [];
  let line = '';
  let lineLen = 0; // in code points, as the limit counts
  for (const word of text.split(' ')) {
    if (word === '') continue;
    const wordLen = codePoints(word);
    const candidateLen = line === '' ? (lines.length === 0 ? wordLen : CONTINUATION.length + wordLen) : lineLen + 1 + wordLen;
    if (candidateLen <= max) {
      line = line === '' ? (lines.length === 0 ? word : CONTINUATION + word) : `${line} ${word}`;
      lineLen = candidateLen;
      continue;
    }
    if (line !== '') lines.push(line);
    // A single word longer than a line is cut.
    line = truncate(lines.length === 0 ? word : CONTINUATION + word, max);
    lineLen = codePoints(line);
  }
  if (line !== '') lines.push(line);
  if (lines.length > maxLines) {
    const kept = lines.slice(0, maxLines);
    kept[kept.length - 1] = truncate(kept[kept.length - 1]! + ' ' + ELLIPSIS, max);
    return kept;
  }
  return lines;
}

/**
 * Warnings within the apiserver's limits: each line at most 120 characters and all together below 4 KiB.
 * An entry is one warning or the wrapped lines of one finding (kept together). When some do not fit, the
 * last line says how many were left out.
 */
export function buildWarnings(texts: readonly (string | readonly string[])[]): string[] {
  const out: string[] = [];
  let used = 0;
  for (let i = 0; i < texts.length; i++) {
    const entry = texts[i]!;
    const lines = (typeof entry === 'string' ? [entry] : entry).map((text) => {
      const indent = text.startsWith(CONTINUATION) ? CONTINUATION : ''; // keep wrapped lines indented
      return truncate(indent + oneLine(text), LIMITS.warningChars);
    });
    const size = lines.reduce((n, l) => n + byteLength(l), 0);
    const remaining = texts.length - i - 1;
    // Keep room for the "N more" note unless this is the last entry.
    const reserve = remaining > 0 ? byteLength(moreNote(texts.length)) : 0;
    if (used + size + reserve > LIMITS.warningsBytes) {
      out.push(moreNote(texts.length - i));
      return out;
    }
    out.push(...lines);
    used += size;
  }
  return out;
}
const moreNote = (n: number): string => `meshguard: ${n} more warning${n === 1 ? '' : 's'} not shown`;

/** A valid qualified-name segment ([A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9], at most 63 characters). */
export function annotationKey(rule: string): string {
  const k = rule.replace(/[^-A-Za-z0-9_.]/g, '-').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return k || 'finding';
}

/** How each finding shows in the response: preexisting problems never deny, they warn. */
function presentation(f: ActedFinding): 'deny' | 'warn' | 'audit' {
  if (f.action === 'audit') return 'audit';
  if (f.preexisting) return 'warn';
  return f.action;
}

/** The AdmissionResponse for a decision. `uid` is request.uid, echoed unchanged. */
export function toAdmissionResponse(uid: string, decision: Decision, opts: ResponseOptions = {}): AdmissionResponse {
  const docsUrl = opts.docsUrl ?? DEFAULT_LINKS;
  const denying: ActedFinding[] = [];
  const warn: string[][] = [];
  const audit = new Map<string, string[]>();
  for (const f of decision.findings) {
    const p = presentation(f);
    // `allowed` is the verdict layer's call; a deny finding on an allowed request (say, one the verdict
    // layer let through) must still be seen, as a warning.
    if (p === 'deny' && !decision.allowed) denying.push(f);
    else if (p === 'deny' || p === 'warn') warn.push(warningLines(f, docsUrl));
    else {
      // Audit mode still tells the person applying what enforce mode would refuse.
      if (f.wouldDeny) warn.push(warningLines(f, docsUrl));
      const key = annotationKey(f.rule);
      const list = audit.get(key) ?? [];
      list.push(oneLine(f.message));
      audit.set(key, list);
    }
  }
  const response: { -readonly [K in keyof AdmissionResponse]: AdmissionResponse[K] } = { uid, allowed: decision.allowed };
  if (!decision.allowed) {
    response.status = { code: 403, reason: 'Forbidden', message: denyMessage(denying, docsUrl) };
  }
  for (const n of [...(decision.notices ?? [])].reverse()) warn.unshift(wrapWarning(`meshguard: ${n}`));
  if (warn.length > 0) response.warnings = buildWarnings(warn);
  if (audit.size > 0) {
    const annotations: Record<string, string> = {};
    for (const [key, msgs] of audit) annotations[key] = truncate(msgs.join('; '), LIMITS.auditValueChars);
    response.auditAnnotations = annotations;
  }
  return response;
}

/** The whole AdmissionReview answer. */
export function toAdmissionReview(uid: string, decision: Decision, opts: ResponseOptions = {}): AdmissionReviewResponse {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: toAdmissionResponse(uid, decision, opts) };
}
