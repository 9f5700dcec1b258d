// `meshguard snapshot`: one YAML or JSON file with exactly the objects meshguard reads from a live cluster
// (slimmed like the live cache: no Secrets, no caBundles), for `check`, `trace` and `serve --state`.

import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';

import { InputError } from '../errors.ts';
import { dumpSnapshot } from '../state/dump.ts';
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

export async function runSnapshot(opts: SnapshotOptions, ctx: CliContext): Promise<void> {
  const { file, format } = snapshotTarget(opts, ctx);
  const text = await dumpSnapshot({
    ...(opts.kubeconfig !== undefined ? { kubeconfigPath: opts.kubeconfig } : {}),
    ...(opts.context !== undefined ? { context: opts.context } : {}),
    ...(opts.istioRootNamespace !== undefined ? { istioRootNamespace: opts.istioRootNamespace } : {}),
    format,
  });
  if (file === undefined) ctx.io.stdout(text);
  else writeAtomically(file, text);
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
