// The one renderer of findings: a rule's finding is written from its rule's message table and its params.
// Every output composes its text through the helpers below, so the words of a finding are chosen here
// and nowhere else: decide.ts renders message/fix once per finding, and the CLI formats, admission
// responses and reports join them the same way.

import type { Detail, MessageTable } from '../core/message.ts';
import type { Finding } from '../core/finding.ts';

/** A code the rule's table does not have: a bug in the rule, reported like a rule that threw. */
export class UnknownCodeError extends Error {
  constructor(rule: string, code: string) {
    super(`finding code ${code} is not in the message table of ${rule}`);
    this.name = 'UnknownCodeError';
  }
}

export interface RenderedText {
  readonly message: string;
  readonly fix?: string;
}

/** Newlines and other line breaks would split a kubectl warning or a log line: one line each. */
function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, ' ');
}

/**
 * The message and fix of a finding. `table` is the message table of the rule that produced it (the
 * verdict layer holds the rule; `Rule.messages`).
 */
export function renderFinding(f: Finding, table: MessageTable | undefined): RenderedText {
  const kind = table?.byCode.get(f.code);
  if (!kind) throw new UnknownCodeError(f.rule, f.code);
  const params = f.params;
  const fix = kind.fix?.(params);
  return { message: oneLine(kind.summary(params)), ...(fix !== undefined && fix !== '' ? { fix } : {}) };
}

/** How much a finding's message says by itself (undefined for the verdict layer's own findings). */
export function detailOf(f: Pick<Finding, 'code'>, table: MessageTable | undefined): Detail | undefined {
  return table?.byCode.get(f.code)?.detail;
}

/** Message then fix, as the one-line outputs print them: `<message> Fix: <fix>`. */
export function withFix(f: { readonly message: string; readonly fix?: string | undefined }, separator = ' Fix: '): string {
  return `${f.message}${f.fix ? `${separator}${f.fix}` : ''}`;
}
