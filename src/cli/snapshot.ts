// `meshguard snapshot`: one YAML or JSON file with exactly the objects meshguard reads from a live cluster
// (slimmed like the live cache: no Secrets, no caBundles), for `check`, `trace` and `serve --state`.

import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';

import { InputError } from '../core/errors.ts';
import { listClusterObjects, snapshotText, type ClusterObjects, type ListProgress } from '../state/dump.ts';
import { KIND_NAMES } from '../core/kinds.ts';
import type { CliContext } from './common.ts';

export const SNAPSHOT_FORMATS = ['yaml', 'json'] as const;
export type SnapshotFormat = (typeof SNAPSHOT_FORMATS)[number];

export interface SnapshotOptions {
  readonly kubeconfig?: string;
  readonly context?: string;
  /** The file to write ("-" or absent: standard output). */
  readonly file?: string;
  /** yaml | json; a value that is neither is the file of the old `-o FILE` usage. */
  readonly output?: string;
  readonly istioRootNamespace?: string;
}

/** Write `text` to `file` whole or not at all (a failed run never leaves a truncated snapshot behind). */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.meshguard-${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new InputError(`cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}

/**
 * Where to write and in which format. `-o` names the format, as in every command; before, it named the
 * file, and `snapshot -o state.json` must keep working: a value that is not a format is taken as the
 * file, with a notice.
 */
export function snapshotTarget(opts: SnapshotOptions, ctx: CliContext): { file?: string; format: SnapshotFormat } {
  let file = opts.file;
  let format: SnapshotFormat | undefined;
  if (opts.output !== undefined) {
    format = SNAPSHOT_FORMATS.find((f) => f === opts.output!.toLowerCase());
    if (format === undefined) {
      if (file !== undefined) throw new InputError(`-o/--output: must be yaml or json (got "${opts.output}"); the file is --file`);
      file = opts.output;
      ctx.io.stderr(`meshguard: "-o ${opts.output}" as the file to write is deprecated: use --file ${opts.output} (-o/--output now takes the format, yaml or json)\n`);
    }
  }
  const toStdout = file === undefined || file === '-';
  // Without -o, a .json file gets JSON: big snapshots load item by item from it (see --state in docs/cli.md).
  return { ...(toStdout ? {} : { file }), format: format ?? (!toStdout && /\.json$/i.test(file!) ? 'json' : 'yaml') };
}

/** Least time between two progress updates of the same list (a new list is shown at once). */
const PROGRESS_EVERY_MS = 100;

/** Progress on one terminal line, rewritten in place, and erased when the lists are done. */
function terminalProgress(write: (s: string) => void): { update: (p: ListProgress) => void; clear: () => void } {
  let lastAt = 0;
  let shown = false;
  return {
    update(p) {
      const now = Date.now();
      if (p.listed > 0 && now - lastAt < PROGRESS_EVERY_MS) return;
      lastAt = now;
      shown = true;
      write(`\r\x1b[Kmeshguard: listing ${p.kind}${p.namespace !== undefined ? ` in ${p.namespace}` : ''}: ${p.listed}`);
    },
    clear() {
      if (shown) write('\r\x1b[K');
    },
  };
}

/** What was read, on stderr: objects per kind, the kinds not installed, and the file written. */
export function snapshotSummary(listed: ClusterObjects, file: string | undefined, format: SnapshotFormat): string {
  const counts = KIND_NAMES.filter((k) => listed.counts[k] !== undefined).map((k) => `${k} ${listed.counts[k]}`);
  const lines = [`meshguard: read ${listed.objects.length} objects from ${listed.server}: ${counts.join(', ')}`];
  if (listed.missing.length > 0) lines.push(`meshguard: not installed (no CRD served; empty in the snapshot): ${listed.missing.join(', ')}`);
  if (file !== undefined) lines.push(`meshguard: wrote ${file} (${format.toUpperCase()})`);
  return lines.join('\n') + '\n';
}

export async function runSnapshot(opts: SnapshotOptions, ctx: CliContext): Promise<void> {
  const { file, format } = snapshotTarget(opts, ctx);
  // A big cluster takes a while to list: show how far it got, but only to a person watching a terminal.
  const progress = ctx.io.stderrIsTTY ? terminalProgress(ctx.io.stderr) : undefined;
  let listed: ClusterObjects;
  try {
    listed = await listClusterObjects({
      ...(opts.kubeconfig !== undefined ? { kubeconfigPath: opts.kubeconfig } : {}),
      ...(opts.context !== undefined ? { context: opts.context } : {}),
      ...(opts.istioRootNamespace !== undefined ? { istioRootNamespace: opts.istioRootNamespace } : {}),
      ...(progress ? { onProgress: progress.update } : {}),
    });
  } finally {
    progress?.clear();
  }
  const text = snapshotText(listed, format);
  if (file === undefined) ctx.io.stdout(text);
  else writeAtomically(file, text);
  ctx.io.stderr(snapshotSummary(listed, file, format));
}

export function snapshotCommand(ctx: CliContext): Command {
  return new Command('snapshot')
    .description('write the objects meshguard reads from a live cluster to one YAML or JSON file usable with --state')
    .option('--kubeconfig <file>', 'cluster to read (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .option('--context <name>', 'kubeconfig context to read instead of current-context')
    .option('--file <file>', 'file to write, replaced atomically (default, or "-": standard output)')
    .option('-o, --output <format>', 'yaml or json (default: json when --file ends in .json, else yaml)')
    .option('--istio-root-namespace <ns>', 'Istio root namespace when it is neither istio-system nor where istiod runs')
    .action(async (opts: SnapshotOptions) => {
      await runSnapshot(opts, ctx);
    });
}
