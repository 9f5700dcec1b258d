// The meshguard config file: global mode, per-rule actions, exempt namespaces and the cluster facts
// rules cannot read from the API (RuleSettings). Validated strictly: a typo must fail loudly at
// startup rather than silently leave a rule at its default.

import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';

import { DEFAULT_BUDGET_MS } from '../core/budget.ts';
import { InputError } from '../core/errors.ts';
import { defaultAction, type Action } from '../core/finding.ts';
import type { LabelSelector } from '../core/objects.ts';
import type { RuleInfo, RuleSettings } from '../core/rule.ts';
import { checkYamlSize, DEFAULT_INPUT_LIMITS, readBoundedText, yamlNarrow, type InputLimits } from '../state/io/input.ts';
import { defaultDocsBaseUrl } from './docs-links.ts';
import { configSchema, type MODES, type ON_ERROR } from './schema.ts';

export type Mode = (typeof MODES)[number];
export type OnError = (typeof ON_ERROR)[number];

/** How a review is bounded, and what it answers when it cannot be finished. */
export interface EvaluationSettings {
  /** Longest a review may run, in milliseconds (src/core/budget.ts). */
  readonly budgetMs: number;
  /**
   * A rule error or an exhausted budget: `fail` denies, `ignore` admits with a warning. Unset: what the
   * webhook entry that carries the request does (docs/adr/0004-error-policy.md): fail for policy
   * objects in enforce mode, ignore for cluster plumbing and in audit mode.
   */
  readonly onError?: OnError;
}

/** Where findings link to for their rule's page (src/config/docs-links.ts). */
export interface DocsSettings {
  /** Rule pages are <baseUrl>/<id>.md; undefined only when package.json has no homepage (then repository paths). */
  readonly baseUrl?: string;
}

export interface Config {
  /** `audit` downgrades every deny to audit (nothing is ever rejected). */
  readonly mode: Mode;
  /** The action of every registered rule: the file's value, or defaultAction(severity). */
  readonly rules: Readonly<Record<string, Action>>;
  readonly exemptions: { readonly namespaces: readonly string[] };
  readonly settings: RuleSettings;
  readonly evaluation: EvaluationSettings;
  readonly docs: DocsSettings;
  /** The file this config was read from (undefined = built-in defaults). */
  readonly file?: string;
}

/** Pods that talk to the kube-apiserver without an RBAC binding of their own service account. */
export const DEFAULT_APISERVER_CLIENTS: RuleSettings['apiserverClients'] = [
  // CoreDNS watches Services and EndpointSlices.
  { namespace: 'kube-system', selector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
  // istiod watches the whole cluster and serves the injection webhook (Istio root namespace).
  { namespace: 'istio-system', selector: { matchLabels: { app: 'istiod' } } },
];

export const DEFAULT_SETTINGS: RuleSettings = {
  apiserverClients: DEFAULT_APISERVER_CLIENTS,
  controlPlane: 'auto',
};

/** The config used when no file is given: enforce, every rule at its severity's default action. */
export function defaultConfig(rules: readonly RuleInfo[]): Config {
  return {
    mode: 'enforce',
    rules: Object.fromEntries(rules.map((r) => [r.id, defaultAction(r.severity)])),
    exemptions: { namespaces: [] },
    settings: DEFAULT_SETTINGS,
    evaluation: { budgetMs: DEFAULT_BUDGET_MS },
    docs: defaultDocs(),
  };
}

function defaultDocs(): DocsSettings {
  const baseUrl = defaultDocsBaseUrl();
  return baseUrl ? { baseUrl } : {};
}

interface RawConfig {
  mode?: Mode;
  rules?: Record<string, Action>;
  exemptions?: { namespaces?: string[] };
  evaluation?: { budgetMs?: number; onError?: OnError };
  docs?: { baseUrl?: string };
  settings?: {
    apiserverClients?: { namespace?: string; selector: LabelSelector }[];
    defaultApiserverClients?: boolean;
    controlPlane?: RuleSettings['controlPlane'];
  };
}

const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile<RawConfig>(configSchema);

/**
 * Read and validate a config file. Without a path, the defaults. Throws InputError naming the file and,
 * when it can be told, the line of the offending key.
 */
export function loadConfig(path: string | undefined, rules: readonly RuleInfo[], limits: InputLimits = DEFAULT_INPUT_LIMITS): Config {
  if (path === undefined) return defaultConfig(rules);
  let text: string;
  try {
    text = readBoundedText(path, limits.maxBytes, undefined, yamlNarrow(limits));
  } catch (e) {
    if (e instanceof InputError && e.message.startsWith(`${path}: cannot read: `)) {
      throw new InputError(`cannot read the config file: ${e.message.slice(`${path}: cannot read: `.length)}`, { file: path });
    }
    throw e;
  }
  checkYamlSize(path, Buffer.byteLength(text), limits);
  return parseConfig(text, path, rules);
}

/** Validate config text (YAML or JSON); `file` names it in errors. */
export function parseConfig(text: string, file: string, rules: readonly RuleInfo[]): Config {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const yamlErr = doc.errors[0];
  if (yamlErr) {
    const first = (yamlErr.message.split('\n')[0] ?? yamlErr.message).replace(/ at line \d+, column \d+:?$/, '');
    throw new InputError(`invalid YAML: ${first}`, { file, ...lineWhere(lc.linePos(yamlErr.pos[0]).line) });
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new InputError(`invalid YAML: ${(e as Error).message}`, { file });
  }
  // An empty file (or only comments) means "all defaults".
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InputError('the config must be a mapping (mode, rules, exemptions, settings)', { file, line: 1 });
  }
  if (!validate(raw)) {
    const err = pickError(validate.errors ?? []);
    throw new InputError(describeError(err), { file, ...lineWhere(lineOfError(doc, lc, err)) });
  }
  const known = new Map(rules.map((r) => [r.id, r]));
  for (const id of Object.keys(raw.rules ?? {})) {
    if (known.has(id)) continue;
    const hint = nearest(id, [...known.keys()]);
    throw new InputError(`rules.${id}: unknown rule id${hint ? ` (did you mean ${hint}?)` : ''}; \`meshguard rules\` lists them`, {
      file,
      ...lineWhere(keyLine(doc, lc, ['rules'], id)),
    });
  }
  const actions: Record<string, Action> = {};
  for (const r of rules) actions[r.id] = raw.rules?.[r.id] ?? defaultAction(r.severity);
  const s = raw.settings ?? {};
  const extraClients = (s.apiserverClients ?? []).map((c) => ({
    ...(c.namespace !== undefined ? { namespace: c.namespace } : {}),
    selector: c.selector,
  }));
  return {
    mode: raw.mode ?? 'enforce',
    rules: actions,
    exemptions: { namespaces: raw.exemptions?.namespaces ?? [] },
    settings: {
      apiserverClients: [...(s.defaultApiserverClients === false ? [] : DEFAULT_APISERVER_CLIENTS), ...extraClients],
      controlPlane: s.controlPlane ?? 'auto',
    },
    evaluation: {
      budgetMs: raw.evaluation?.budgetMs ?? DEFAULT_BUDGET_MS,
      ...(raw.evaluation?.onError !== undefined ? { onError: raw.evaluation.onError } : {}),
    },
    docs: raw.docs?.baseUrl !== undefined ? { baseUrl: docsBaseUrl(raw.docs.baseUrl, doc, lc, file) } : defaultDocs(),
    file,
  };
}

/** A base URL the schema let through, checked as a URL and without its trailing slashes. */
function docsBaseUrl(value: string, doc: Document, lc: LineCounter, file: string): string {
  const where = { file, ...lineWhere(keyLine(doc, lc, ['docs'], 'baseUrl')) };
  // Links travel in HTTP headers (warnings) and terminals: printable ASCII only (percent-encode the rest).
  if (!/^[!-~]+$/.test(value)) throw new InputError('docs.baseUrl: only printable ASCII characters (percent-encode others)', where);
  try {
    new URL(value);
  } catch {
    throw new InputError('docs.baseUrl: not a valid URL', where);
  }
  return value.replace(/\/+$/, '');
}

function lineWhere(line: number | undefined): { line?: number } {
  return line !== undefined && line > 0 ? { line } : {};
}

/** The most useful of ajv's errors: an unknown key first, then the deepest one. */
function pickError(errors: readonly ErrorObject[]): ErrorObject {
  const unknownKey = errors.find((e) => e.keyword === 'additionalProperties');
  if (unknownKey) return unknownKey;
  // `enum` inside additionalProperties of `rules` and the like: the deepest path names the culprit.
  return [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length)[0]!;
}

function segmentsOf(instancePath: string): (string | number)[] {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** "settings.apiserverClients[0].selector" from ["settings","apiserverClients",0,"selector"]. */
function dotted(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) out += typeof s === 'number' ? `[${s}]` : out === '' ? s : `.${s}`;
  return out;
}

function describeError(err: ErrorObject): string {
  const segs = segmentsOf(err.instancePath);
  const at = dotted(segs);
  const params = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      return `${dotted([...segs, key])}: unknown key${at ? ` in ${at}` : ''}`;
    }
    case 'enum':
      return `${at || '(top level)'}: must be one of ${(params.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'type':
      return `${at || '(top level)'}: must be ${String(params.type)}`;
    case 'required':
      return `${dotted([...segs, String(params.missingProperty)])}: is required`;
    case 'minimum':
    case 'maximum':
      return `${at}: must be ${err.keyword === 'minimum' ? '>=' : '<='} ${String(params.limit)}`;
    case 'pattern':
      return segs[0] === 'docs' ? `${at}: must be an https:// URL without query or fragment` : `${at}: not a valid Kubernetes name`;
    case 'maxLength':
      return `${at}: longer than ${String(params.limit)} characters`;
    case 'uniqueItems':
      return `${at}: has duplicates`;
    default:
      return `${at || '(top level)'}: ${err.message ?? 'invalid'}`;
  }
}

function nodeAt(doc: Document, segments: readonly (string | number)[]): YamlNode | undefined {
  if (segments.length === 0) return (doc.contents as YamlNode | null) ?? undefined;
  const n = doc.getIn(segments, true);
  return n && typeof n === 'object' && 'range' in (n as object) ? (n as YamlNode) : undefined;
}

function lineOfNode(node: YamlNode | undefined, lc: LineCounter): number | undefined {
  const off = node?.range?.[0];
  return off === undefined ? undefined : lc.linePos(off).line;
}

/** Line of key `key` in the mapping at `segments`. */
function keyLine(doc: Document, lc: LineCounter, segments: readonly (string | number)[], key: string): number | undefined {
  const map = nodeAt(doc, segments);
  if (!isMap(map)) return lineOfNode(map, lc);
  for (const pair of map.items) {
    if (isScalar(pair.key) && String(pair.key.value) === key) return lineOfNode(pair.key, lc);
  }
  return lineOfNode(map, lc);
}

function lineOfError(doc: Document, lc: LineCounter, err: ErrorObject): number | undefined {
  const segs = segmentsOf(err.instancePath);
  if (err.keyword === 'additionalProperties') {
    return keyLine(doc, lc, segs, String((err.params as Record<string, unknown>).additionalProperty));
  }
  // Point at the key whose value is wrong when the parent is a mapping (reads better than the value).
  const last = segs[segs.length - 1];
  if (typeof last === 'string') {
    const parent = nodeAt(doc, segs.slice(0, -1));
    if (isMap(parent)) return keyLine(doc, lc, segs.slice(0, -1), last);
  }
  const node = nodeAt(doc, segs);
  if (node) return lineOfNode(node, lc);
  const parent = nodeAt(doc, segs.slice(0, -1));
  return isSeq(parent) || isMap(parent) ? lineOfNode(parent, lc) : undefined;
}

/** A known id close to a misspelt one (edit distance <= 3), for "did you mean". */
function nearest(id: string, ids: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 4;
  for (const k of ids) {
    const d = distance(id, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
