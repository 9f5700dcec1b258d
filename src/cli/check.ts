// `meshguard check`: the webhook's verdicts without a cluster round trip, for CI pipelines. Each object
// of the manifests is one admission request, in order, like `kubectl apply -f`; an admitted object is
// applied to the state before the next one is judged, so a namespace and its policies can be checked
// together.

import { Command, Option } from 'commander';

import { loadConfig, type Config } from '../config/config.ts';
import { docsLinks, type DocsLinks } from '../config/docs-links.ts';
import { buildChange, gvkOf, isRawObject as isRaw, type Change, type Operation } from '../core/change.ts';
import type { Decision } from '../core/decision.ts';
import { InputError } from '../core/errors.ts';
import { KIND_NAMES, KINDS, kindOf } from '../core/kinds.ts';
import type { KubeObject } from '../core/objects.ts';
import type { Rule } from '../core/rule.ts';
import { isIstiodDeployment } from '../policy/index.ts';
import { readManifests, type ManifestDoc } from '../state/io/manifests.ts';
import { MemoryState } from '../state/store.ts';
import { slimRequestObject } from '../state/slim.ts';
import { createDecide } from '../verdict/decide.ts';
import { reportMeta } from './audit.ts';
import { addLimitOptions, choice, collect, EXIT_DENIED, inputLimits, loadMutableState, setExit, stateArgs, type CliContext } from './common.ts';
import { findingJson, renderGithub, renderJunit, renderSarif, type ReportObject } from './formats.ts';

const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE'] as const satisfies readonly Operation[];

export interface CheckOptions {
  readonly state?: string[];
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly config?: string;
  readonly operation?: string;
  readonly output: 'text' | 'json' | 'sarif' | 'junit' | 'github';
  /** Judge each manifest file against the original state (objects within a file still apply in order). */
  readonly perFile?: boolean;
  readonly maxInputBytes?: string;
  readonly maxYamlBytes?: string;
}

export interface CheckFinding {
  readonly rule: string;
  /** Stable code of the finding's kind (`<rule>/<kind>`), for rules that have codes. */
  readonly code: string;
  readonly action: 'deny' | 'warn' | 'audit';
  readonly message: string;
  readonly fix?: string;
  readonly victims?: readonly string[];
  readonly victimCount?: number;
  readonly preexisting?: boolean;
  /** The rule's page: an https URL under the config's docs.baseUrl. */
  readonly docs: string;
}

/**
 * Why an object was not judged: `kind`, a kind meshguard does not read (Secret, ...); `exempt`, in a
 * namespace the config exempts; `no-rule`, an object or change no active rule looks at (a Service, a
 * Deployment that is not istiod, a label change no policy reads).
 */
export type NotChecked = 'kind' | 'exempt' | 'no-rule';

/** One object's verdict: the `results[]` entry of `check --output json` (docs/cli.md). */
export interface CheckResult {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly operation: Operation;
  readonly allowed: boolean;
  readonly findings: readonly CheckFinding[];
  readonly skipped?: readonly string[];
  readonly exemptReason?: string;
  readonly notChecked?: NotChecked;
  readonly notices?: readonly string[];
  readonly file: string;
  readonly line: number;
}

type Raw = Record<string, unknown>;

/** The admission request `kubectl apply` (or delete) of this manifest object would make against `state`. */
export function changeFor(doc: ManifestDoc, index: number, state: MemoryState, forced: Operation | undefined): Change {
  const raw = doc.object;
  const kind = kindOf(raw as { apiVersion?: string; kind?: string });
  const meta = isRaw(raw.metadata) ? raw.metadata : {};
  const name = String(meta.name);
  const ownNs = typeof meta.namespace === 'string' ? meta.namespace : '';
  const namespaced = kind ? KINDS[kind].namespaced : ownNs !== '';
  // kubectl fills a missing namespace from the context; "default" is what it would use.
  const namespace = namespaced ? ownNs || 'default' : '';
  const existing = kind ? (state.get(kind, namespace, name) as KubeObject | undefined) : undefined;
  const operation: Operation = forced ?? (existing ? 'UPDATE' : 'CREATE');
  return buildChange(
    {
      uid: `meshguard-check-${index + 1}`,
      operation,
      gvk: gvkOf(String(raw.apiVersion), String(raw.kind)),
      namespace,
      name,
      object: { sent: raw },
      // The apiserver sends the stored object; without one in the state, a DELETE's manifest stands in for it.
      ...(existing ? { oldObject: { stored: existing } } : operation === 'DELETE' ? { oldObject: { sent: raw } } : {}),
      dryRun: true,
      userInfo: { username: 'meshguard-check' },
    },
    slimRequestObject,
  );
}

/** Apply an admitted change to the state, as the apiserver would persist it. */
function apply(state: MemoryState, change: Change): void {
  if (!change.kind) return;
  if (change.operation === 'DELETE') state.remove(change.kind, change.namespace, change.name);
  else if (change.object) state.upsert(change.kind, change.object);
}

/**
 * Whether, and why not, rules judged this object: the summary must not count a Secret as checked. The
 * verdict layer says so for kinds it does not read, exempt namespaces and unread Namespace labels; an
 * object no active rule triggers on, and the Deployments and ConfigMaps rules ignore (the webhook is
 * sent only istiod and kube-system/cilium-config: deploy/base/webhook.yaml), is found here.
 */
function notChecked(change: Change, decision: Decision, config: Config, rules: readonly Rule[]): { notChecked: NotChecked; exemptReason: string } | undefined {
  if (decision.exemptReason !== undefined) {
    const ns = change.kind === 'Namespace' ? change.name : change.namespace;
    const why = ns !== '' && config.exemptions.namespaces.includes(ns) ? 'exempt' : change.kind === undefined ? 'kind' : 'no-rule';
    return { notChecked: why, exemptReason: decision.exemptReason };
  }
  if (decision.findings.length > 0 || !decision.allowed) return undefined;
  const kind = change.kind;
  if (kind === undefined) return undefined; // the verdict layer always explains these
  const judged = rules.some(
    (r) => (config.rules[r.id] ?? 'off') !== 'off' && r.triggers.some((t) => t.kinds.includes(kind) && t.operations.includes(change.operation)),
  );
  const a = (word: string) => `${/^[AEIOU]/i.test(word) ? 'an' : 'a'} ${word}`;
  if (!judged) return { notChecked: 'no-rule', exemptReason: `no meshguard rule judges ${a(change.operation)} of ${a(kind)}` };
  if (kind === 'Deployment' && !isIstiodDeployment(change.object) && !isIstiodDeployment(change.oldObject)) {
    return { notChecked: 'no-rule', exemptReason: 'meshguard judges only istiod Deployments' };
  }
  if (kind === 'ConfigMap' && !(change.namespace === 'kube-system' && change.name === 'cilium-config')) {
    return { notChecked: 'no-rule', exemptReason: 'meshguard judges only the kube-system/cilium-config ConfigMap' };
  }
  return undefined;
}

function toResult(doc: ManifestDoc, change: Change, decision: Decision, docsUrl: DocsLinks, unchecked: ReturnType<typeof notChecked>): CheckResult {
  return {
    kind: change.gvk.kind,
    namespace: change.namespace,
    name: change.name,
    operation: change.operation,
    allowed: decision.allowed,
    findings: decision.findings.map((f) => ({ ...findingJson(f, docsUrl), ...(f.preexisting ? { preexisting: true } : {}) })),
    ...(decision.skipped.length > 0 ? { skipped: decision.skipped } : {}),
    ...(unchecked ?? {}),
    ...(decision.notices !== undefined ? { notices: decision.notices } : {}),
    file: doc.file,
    line: doc.line,
  };
}

/** A copy of a state that can be changed without touching the original (objects are shared, never mutated). */
function copyState(state: MemoryState): MemoryState {
  const copy = new MemoryState(state.describe());
  for (const kind of KIND_NAMES) copy.replaceAll(kind, state.list(kind));
  return copy;
}

/**
 * Evaluate every object in order; the state is changed by every admitted object. `config` is the
 * loaded --config when the caller has it already (the command renders with it too).
 */
export async function runCheck(manifests: readonly string[], opts: CheckOptions, ctx: CliContext, loaded?: Config): Promise<CheckResult[]> {
  stateArgs(opts, true);
  const forced = opts.operation !== undefined ? choice('--operation', opts.operation, OPERATIONS) : undefined;
  // Read every input before producing any output: a bad file must leave stdout empty.
  const limits = inputLimits(opts);
  const config = loaded ?? loadConfig(opts.config, ctx.rules, limits);
  const docs = readManifests(manifests, limits);
  if (docs.length === 0) throw new InputError(`no Kubernetes objects found in ${manifests.join(', ')}`);
  const original = await loadMutableState(opts, limits);
  const decide = createDecide(ctx.rules, config);
  const docsUrl = docsLinks(config.docs.baseUrl);
  const results: CheckResult[] = [];
  let state = original;
  let currentFile: string | undefined;
  docs.forEach((doc, i) => {
    if (opts.perFile && doc.file !== currentFile) {
      // Each file is an independent proposal: start again from the state as loaded.
      currentFile = doc.file;
      state = copyState(original);
    }
    const change = changeFor(doc, i, state, forced);
    const decision = decide(change, state);
    if (decision.allowed) apply(state, change);
    results.push(toResult(doc, change, decision, docsUrl, notChecked(change, decision, config, ctx.rules)));
  });
  return results;
}

function objectName(r: CheckResult): string {
  return r.namespace ? `${r.namespace}/${r.name}` : r.name;
}

/** The human-readable report: one block per object, then a summary line. */
export function formatText(results: readonly CheckResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const verdict = r.allowed ? (r.findings.length > 0 ? 'allowed with findings' : 'allowed') : 'DENIED';
    lines.push(`${r.operation} ${r.kind} ${objectName(r)} (${r.file}:${r.line}): ${verdict}`);
    if (r.exemptReason) lines.push(`  not checked: ${r.exemptReason}`);
    for (const n of r.notices ?? []) lines.push(`  note: ${n}`);
    for (const f of r.findings) {
      lines.push(`  ${f.action.padEnd(5)} ${f.rule}: ${f.preexisting ? '(pre-existing) ' : ''}${f.message}`);
      if (f.victims && f.victims.length > 0) {
        const more = (f.victimCount ?? f.victims.length) - f.victims.length;
        lines.push(`        affected: ${f.victims.join(', ')}${more > 0 ? ` and ${more} more` : ''}`);
      }
      if (f.fix) lines.push(`        fix: ${f.fix}`);
      lines.push(`        docs: ${f.docs}`);
    }
    if (r.skipped && r.skipped.length > 0) lines.push(`  skipped by annotation: ${r.skipped.join(', ')}`);
  }
  lines.push(summaryLine(results));
  return lines.join('\n') + '\n';
}

const NOT_CHECKED_LABELS: Record<NotChecked, string> = {
  kind: 'kinds meshguard does not read',
  exempt: 'exempt namespaces',
  'no-rule': 'no rule applies',
};

/** "3 objects checked: 2 allowed, 1 denied, 4 findings; 2 not checked (kinds meshguard does not read)" */
export function summaryLine(results: readonly CheckResult[]): string {
  const checked = results.filter((r) => r.notChecked === undefined);
  const denied = checked.filter((r) => !r.allowed).length;
  const findings = checked.reduce((n, r) => n + r.findings.length, 0);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  let line = `${plural(checked.length, 'object')} checked: ${checked.length - denied} allowed, ${denied} denied, ${plural(findings, 'finding')}`;
  const unchecked = results.length - checked.length;
  if (unchecked > 0) {
    const byWhy = (Object.keys(NOT_CHECKED_LABELS) as NotChecked[])
      .map((why) => [why, results.filter((r) => r.notChecked === why).length] as const)
      .filter(([, n]) => n > 0);
    // One reason: its name says it; several: how many each.
    const why = byWhy.length === 1 ? NOT_CHECKED_LABELS[byWhy[0]![0]] : byWhy.map(([w, n]) => `${NOT_CHECKED_LABELS[w]}: ${n}`).join(', ');
    line += `; ${unchecked} not checked (${why})`;
  }
  return line;
}

export function checkCommand(ctx: CliContext): Command {
  return addLimitOptions(new Command('check'))
    .description('evaluate manifests as admission requests against a cluster state, in order, like kubectl apply')
    .argument('<manifest...>', 'manifest files or directories (YAML/JSON, multi-document, kind: List)')
    .option('--state <path>', 'cluster state: file or directory of YAML/JSON (repeatable)', collect)
    .option('--kubeconfig <file>', 'read the state from a live cluster instead')
    .option('--context <name>', 'kubeconfig context to read from instead of current-context')
    .option('--config <file>', 'meshguard config file (default: built-in defaults)')
    .option('--operation <op>', 'CREATE | UPDATE | DELETE (default: CREATE, or UPDATE when the object is in the state)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(CHECK_FORMATS).default('text'))
    .option('--per-file', 'judge each manifest file on its own against the original state (default: one apply, in order)')
    .option('--fail-on-warn', 'exit 1 for findings at warn level too, not only denials')
    .action(async (manifests: string[], opts: CheckOptions & { failOnWarn?: boolean }) => {
      const config = loadConfig(opts.config, ctx.rules, inputLimits(opts));
      const results = await runCheck(manifests, opts, ctx, config);
      ctx.io.stdout(renderCheck(results, opts.output, ctx, config.docs.baseUrl));
      const warned = opts.failOnWarn === true && results.some((r) => r.findings.some((f) => f.action === 'warn'));
      if (results.some((r) => !r.allowed) || warned) setExit(ctx, EXIT_DENIED);
    });
}

export const CHECK_FORMATS = ['text', 'json', 'sarif', 'junit', 'github'] as const;

/** check's results in any of its output formats (the CI ones from src/cli/formats.ts). */
export function renderCheck(results: readonly CheckResult[], format: (typeof CHECK_FORMATS)[number], ctx: CliContext, docsBaseUrl: string | undefined): string {
  if (format === 'json') return JSON.stringify({ results }, null, 2) + '\n';
  if (format === 'text') return formatText(results);
  const objects: ReportObject[] = results
    .filter((r) => r.notChecked === undefined)
    .map((r) => ({
      kind: r.kind,
      namespace: r.namespace,
      name: r.name,
      file: r.file,
      line: r.line,
      findings: r.findings.map((f) => ({ rule: f.rule, code: f.code, action: f.action, message: f.message, ...(f.fix ? { fix: f.fix } : {}) })),
    }));
  if (format === 'github') return renderGithub(objects);
  const meta = reportMeta(ctx, 'meshguard check', docsLinks(docsBaseUrl));
  return format === 'sarif' ? renderSarif(objects, meta) : renderJunit(objects, meta);
}
