// `meshguard audit`: every problem that exists in a cluster state now, each attributed to an object
// that causes it (src/verdict/audit.ts says how). Same exit codes as `check`: 0 nothing at deny level,
// 1 something at deny level (or at warn level with --fail-on-warn), 2 usage or input error.

import { Command, Option } from 'commander';

import { loadConfig } from '../config/config.ts';
import { docsLinks, type DocsLinks } from '../config/docs-links.ts';
import { packageInfo } from '../core/package-info.ts';
import { auditState, type AuditResult } from '../verdict/audit.ts';
import { createDecide } from '../verdict/decide.ts';
import {
  addLimitOptions,
  collect,
  EXIT_DENIED,
  inputLimits,
  loadMutableState,
  setExit,
  stateArgs,
  version,
  type CliContext,
  type LimitFlags,
} from './common.ts';
import { findingJson, objectRef, renderGithub, renderJunit, renderSarif, type ReportMeta, type ReportObject } from './formats.ts';

export const AUDIT_FORMATS = ['text', 'json', 'sarif', 'junit', 'github'] as const;
export type AuditFormat = (typeof AUDIT_FORMATS)[number];

export interface AuditOptions extends LimitFlags {
  readonly state?: string[];
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly config?: string;
  readonly output: AuditFormat;
  readonly failOnWarn?: boolean;
}

export interface AuditSummary {
  readonly audited: number;
  /** Objects with findings. */
  readonly results: readonly AuditResult[];
  /** Every audited object, clean ones too (JUnit lists them as passing cases). */
  readonly all: readonly AuditResult[];
  /** Rule id -> https link to its page (the config's docs.baseUrl). */
  readonly docsUrl: DocsLinks;
}

export async function runAudit(opts: AuditOptions, ctx: CliContext): Promise<AuditSummary> {
  stateArgs(opts, true);
  const limits = inputLimits(opts);
  const config = loadConfig(opts.config, ctx.rules, limits);
  const state = await loadMutableState(opts, limits);
  const decide = createDecide(ctx.rules, config);
  const all = auditState(state, decide, ctx.rules, config);
  return { audited: all.length, results: all.filter((r) => r.findings.length > 0), all, docsUrl: docsLinks(config.docs.baseUrl) };
}

function toReportObjects(results: readonly AuditResult[]): ReportObject[] {
  return results.map((r) => ({
    kind: r.kind,
    namespace: r.namespace,
    name: r.name,
    findings: r.findings.map((f) => ({ rule: f.rule, code: f.code, action: f.action, message: f.message, ...(f.fix ? { fix: f.fix } : {}) })),
  }));
}

export function reportMeta(ctx: CliContext, suite: string, docsUrl: DocsLinks): ReportMeta {
  const home = packageInfo().homepage;
  return {
    tool: 'meshguard',
    version: version(),
    suite,
    ...(home ? { informationUri: home } : {}),
    rules: ctx.rules.map((r) => {
      const url = docsUrl(r.id);
      return { id: r.id, summary: r.summary, severity: r.severity, ...(url.startsWith('https://') ? { helpUri: url } : {}) };
    }),
  };
}

export function formatAuditText(summary: AuditSummary): string {
  const lines: string[] = [];
  let findings = 0;
  let deny = 0;
  for (const r of summary.results) {
    lines.push(`${objectRef(r)}:`);
    for (const f of r.findings) {
      findings++;
      if (f.action === 'deny') deny++;
      lines.push(`  ${f.action.padEnd(5)} ${f.rule}: ${f.message}${f.shared ? ' (other objects cause it too)' : ''}`);
      if (f.victims && f.victims.length > 0) lines.push(`        affected: ${f.victims.join(', ')}${(f.victimCount ?? 0) > f.victims.length ? ` (+${f.victimCount! - f.victims.length} more)` : ''}`);
      if (f.fix) lines.push(`        fix: ${f.fix}`);
      lines.push(`        docs: ${summary.docsUrl(f.rule)}`);
    }
  }
  const objects = summary.results.length;
  lines.push(
    `${summary.audited} object${summary.audited === 1 ? '' : 's'} audited: ${objects} with findings, ${findings} finding${findings === 1 ? '' : 's'} (${deny} at deny level)`,
  );
  return `${lines.join('\n')}\n`;
}

export function auditCommand(ctx: CliContext): Command {
  return addLimitOptions(new Command('audit'))
    .description('report every problem that exists in a cluster state now, attributed to the objects causing it')
    .option('--state <path>', 'cluster state: file or directory of YAML/JSON (repeatable)', collect)
    .option('--kubeconfig <file>', 'read the state from a live cluster instead')
    .option('--context <name>', 'kubeconfig context to read from instead of current-context')
    .option('--config <file>', 'meshguard config file (default: built-in defaults)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(AUDIT_FORMATS).default('text'))
    .option('--fail-on-warn', 'exit 1 for findings at warn level too, not only deny')
    .action(async (opts: AuditOptions) => {
      const summary = await runAudit(opts, ctx);
      // JUnit shows every audited object (a clean one as a passing case); the other formats, findings.
      const objects = toReportObjects(opts.output === 'junit' ? summary.all : summary.results);
      const meta = reportMeta(ctx, 'meshguard audit', summary.docsUrl);
      const out =
        opts.output === 'json'
          ? `${JSON.stringify(
              {
                audited: summary.audited,
                results: summary.results.map((r) => ({
                  kind: r.kind,
                  namespace: r.namespace,
                  name: r.name,
                  findings: r.findings.map((f) => ({ ...findingJson(f, summary.docsUrl), ...(f.shared ? { shared: true } : {}) })),
                })),
              },
              null,
              2,
            )}\n`
          : opts.output === 'sarif'
            ? renderSarif(objects, meta)
            : opts.output === 'junit'
              ? renderJunit(objects, meta)
              : opts.output === 'github'
                ? renderGithub(objects)
                : formatAuditText(summary);
      ctx.io.stdout(out);
      const failing = summary.results.some((r) => r.findings.some((f) => f.action === 'deny' || (opts.failOnWarn && f.action === 'warn')));
      if (failing) setExit(ctx, EXIT_DENIED);
    });
}
