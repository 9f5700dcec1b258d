// Finding codes and message tables. A rule says *what* it found as a stable code and plain data (the
// params); the words are written once, in the rule's message table (src/rules/<id>/messages.ts), and
// rendered centrally (src/verdict/render.ts) for every output: text, JSON, kubectl warnings and denial
// messages, SARIF, JUnit, GitHub annotations and PolicyReports.
//
// A code is `<rule id>/<kind>`, kind in kebab-case (`cilium-cni-exclusive/config-turns-on`). Codes are
// part of the contract like rule ids: JSON output, SARIF properties and PolicyReport properties carry
// them, and tools may match on them. Never rename or reuse a code; a message's wording may change.

/** A param is plain data: a name, a count, a port, a flag, or a list of names (the victims, ...). */
export type ParamValue = string | number | boolean | readonly string[];
export type Params = { readonly [name: string]: ParamValue | undefined };

/**
 * How much the text says by itself. `self-contained`: the summary names everything the reader needs.
 * `list-victims`: the summary counts or describes the affected pods and a denial message appends the
 * finding's victims ("Affected: ns/a, ns/b and 3 more").
 */
export type Detail = 'self-contained' | 'list-victims';

/** The words for one kind of finding, as small functions of its typed params (no templates parsed at run time). */
export interface MessageKind<P extends Params> {
  /** When this kind is reported, one line for the rule's docs page (its Codes section is generated from it). */
  readonly description: string;
  /** One line: what breaks, for whom. No newlines. */
  readonly summary: (p: P) => string;
  /** The smallest change that fixes it, one line. */
  readonly fix?: (p: P) => string;
  readonly detail: Detail;
}

/** Param types per kind, e.g. `{ 'config-turns-on': { source: string } }` (type aliases, not interfaces). */
export type KindParams = { readonly [kind: string]: Params };

export type MessageSpecs<M extends KindParams> = { readonly [K in keyof M & string]: MessageKind<M[K]> };

/** What the renderer reads: full code -> message kind. */
export interface MessageTable {
  readonly rule: string;
  readonly byCode: ReadonlyMap<string, MessageKind<Params>>;
}

/** A finding as a converted rule's `check` returns it: code and params, no prose. */
export interface CodedFinding {
  readonly rule: string;
  readonly code: string;
  readonly params: Params;
  readonly victims?: readonly string[];
  readonly victimCount?: number;
  readonly preexisting?: boolean;
}

export interface FindingExtras {
  readonly victims?: readonly string[];
  readonly victimCount?: number;
  readonly preexisting?: boolean;
}

export interface Messages<M extends KindParams> extends MessageTable {
  /** The full, stable code of a kind: `<rule>/<kind>`. */
  code(kind: keyof M & string): string;
  /** Every code of the rule, for docs and tests. */
  readonly codes: readonly string[];
  /** A finding of this kind. The params are type-checked against the kind's message functions. */
  finding<K extends keyof M & string>(kind: K, params: M[K], extras?: FindingExtras): CodedFinding;
}

const KIND = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** A rule's message table. Kinds are kebab-case; the code of each is `<rule>/<kind>`. */
export function defineMessages<M extends KindParams>(rule: string, specs: MessageSpecs<M>): Messages<M> {
  const byCode = new Map<string, MessageKind<Params>>();
  for (const [kind, spec] of Object.entries(specs) as [string, MessageKind<Params>][]) {
    if (!KIND.test(kind)) throw new Error(`${rule}: message kind "${kind}" is not kebab-case`);
    byCode.set(`${rule}/${kind}`, spec);
  }
  const codes = Object.freeze([...byCode.keys()]);
  return {
    rule,
    byCode,
    codes,
    code: (kind) => `${rule}/${kind}`,
    finding: (kind, params, extras = {}) => ({
      rule,
      code: `${rule}/${kind}`,
      params,
      ...(extras.victims !== undefined ? { victims: extras.victims } : {}),
      ...(extras.victimCount !== undefined ? { victimCount: extras.victimCount } : {}),
      ...(extras.preexisting ? { preexisting: true } : {}),
    }),
  };
}
