// `meshguard snapshot`: one YAML (or, for a .json file, JSON) file with exactly the objects meshguard reads
// from a live cluster (slimmed like the live cache: no Secrets, no caBundles), for `check`, `trace` and
// `serve --state`.

import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { Command } from 'commander';

import { InputError } from '../errors.ts';
import { dumpSnapshot } from '../state/dump.ts';
import type { CliContext } from './common.ts';

export interface SnapshotOptions {
  readonly kubeconfig?: string;
  readonly output: string;
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

export async function runSnapshot(opts: SnapshotOptions, ctx: CliContext): Promise<void> {
  // A .json file gets JSON: big snapshots load item by item from it (see --state in docs/cli.md).
  const json = /\.json$/i.test(opts.output);
  const text = await dumpSnapshot({
    ...(opts.kubeconfig !== undefined ? { kubeconfigPath: opts.kubeconfig } : {}),
    ...(opts.istioRootNamespace !== undefined ? { istioRootNamespace: opts.istioRootNamespace } : {}),
    ...(json ? { format: 'json' as const } : {}),
  });
  if (opts.output === '-') ctx.io.stdout(text);
  else writeAtomically(opts.output, text);
}

export function snapshotCommand(ctx: CliContext): Command {
  return new Command('snapshot')
    .description('write the objects meshguard reads from a live cluster to one YAML file (JSON if it ends in .json) usable with --state')
    .option('--kubeconfig <file>', 'cluster to read (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
    .requiredOption('-o, --output <file>', 'file to write: YAML, or JSON when it ends in .json ("-" for stdout, YAML)')
    .option('--istio-root-namespace <ns>', 'Istio root namespace when it is neither istio-system nor where istiod runs')
    .action(async (opts: SnapshotOptions) => {
      await runSnapshot(opts, ctx);
    });
}
