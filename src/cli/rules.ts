// `meshguard rules`: the catalogue as the registry holds it (never a hand-written list), with each
// rule's default action and, given a config file, the action that config gives it.

import { Command, Option } from 'commander';

import { loadConfig, type Config } from '../config/config.ts';
import { docsLinks } from '../config/docs-links.ts';
import { actionUnderMode, defaultAction, type Action, type Severity } from '../core/finding.ts';
import type { InputLimits } from '../state/io/input.ts';
import { addLimitOptions, inputLimits, type CliContext, type LimitFlags } from './common.ts';

export interface RuleRow {
  readonly id: string;
  readonly severity: Severity;
  readonly defaultAction: Action;
  /** What the given config makes of the rule, mode included (the default action without one). */
  readonly action: Action;
  readonly summary: string;
  /** The page's path in this repository (docs/rules/<id>.md). */
  readonly docs: string;
  /** The page as an https URL, under the config's docs.baseUrl: what findings link to. */
  readonly docsUrl: string;
}

const SEVERITY_NAMES: Record<Severity, string> = { B: 'breaks traffic', I: 'ineffective', R: 'risky' };

export function ruleRows(ctx: CliContext, configFile?: string, limits?: InputLimits): RuleRow[] {
  return rowsFor(ctx, loadConfig(configFile, ctx.rules, limits));
}

function rowsFor(ctx: CliContext, config: Config): RuleRow[] {
  const docsUrl = docsLinks(config.docs.baseUrl);
  return ctx.rules.map((r) => ({
    id: r.id,
    severity: r.severity,
    defaultAction: defaultAction(r.severity),
    action: actionUnderMode(config.rules[r.id] ?? defaultAction(r.severity), config.mode),
    summary: r.summary,
    docs: r.docs,
    docsUrl: docsUrl(r.id),
  }));
}

export function formatRules(rows: readonly RuleRow[], showAction: boolean): string {
  if (rows.length === 0) return 'no rules registered\n';
  const head = ['RULE', 'SEVERITY', 'DEFAULT', ...(showAction ? ['ACTION'] : []), 'SUMMARY'];
  const body = rows.map((r) => [
    r.id,
    `${r.severity} (${SEVERITY_NAMES[r.severity]})`,
    r.defaultAction,
    ...(showAction ? [r.action] : []),
    `${r.summary} [${r.docsUrl}]`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n') + '\n';
}

/**
 * A Markdown table: id linked to its page, default action, summary. Links are the https pages, or with
 * `links: 'repository'` the pages' paths, for a table inside this repository (the README's).
 */
export function formatRulesMarkdown(rows: readonly RuleRow[], showAction: boolean, links: 'url' | 'repository' = 'url'): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const head = `| rule | severity | default |${showAction ? ' action |' : ''} summary |`;
  const sep = `|---|---|---|${showAction ? '---|' : ''}---|`;
  const body = rows.map(
    (r) => `| [\`${r.id}\`](${links === 'url' ? r.docsUrl : r.docs}) | ${r.severity} | ${r.defaultAction} |${showAction ? ` ${r.action} |` : ''} ${cell(r.summary)} |`,
  );
  return [head, sep, ...body].join('\n') + '\n';
}

export function rulesCommand(ctx: CliContext): Command {
  return addLimitOptions(new Command('rules'))
    .description('list the rule catalogue: id, severity, default action, summary, link to the rule\'s page')
    .option('--config <file>', 'also show the action this config gives each rule')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json', 'markdown']).default('text'))
    .action((opts: { config?: string; output: 'text' | 'json' | 'markdown' } & LimitFlags) => {
      const config = loadConfig(opts.config, ctx.rules, inputLimits(opts));
      const rows = rowsFor(ctx, config);
      const withAction = opts.config !== undefined;
      // ACTION already shows audit mode's effect; say why DEFAULT's deny became audit there.
      const note = withAction && config.mode === 'audit' ? 'mode: audit, so every deny is audit: nothing is refused\n' : '';
      ctx.io.stdout(
        opts.output === 'json'
          ? JSON.stringify({ rules: rows }, null, 2) + '\n'
          : opts.output === 'markdown'
            ? formatRulesMarkdown(rows, withAction)
            : formatRules(rows, withAction) + note,
      );
    });
}
