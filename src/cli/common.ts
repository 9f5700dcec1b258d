// Pieces every meshguard command shares: where output goes, the exit code, repeatable options, the
// version, and turning --state / --kubeconfig into a mutable copy of the cluster state.

import { Command } from 'commander';

import { InputError } from '../core/errors.ts';
import { packageInfo } from '../core/package-info.ts';
import { DEFAULT_INPUT_LIMITS, formatBytes, parseByteSize, type InputLimits } from '../state/io/input.ts';
import type { Rule } from '../core/rule.ts';
import { istioNamespaces, loadSnapshot, stateFromObjects } from '../state/snapshot.ts';
import type { MemoryState } from '../state/store.ts';

export const EXIT_OK = 0;
/** At least one request was denied. */
export const EXIT_DENIED = 1;
/** Usage or input error: bad flag, unreadable file, invalid YAML or config. */
export const EXIT_INPUT = 2;
/** A bug in meshguard. */
export const EXIT_INTERNAL = 3;

export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** stderr is a terminal: progress may be shown there (never in CI logs, where it would be noise). */
  readonly stderrIsTTY?: boolean;
}

/** What a command needs besides its options: output, the rule catalogue, and where to put its exit code. */
export interface CliContext {
  readonly io: CliIO;
  readonly rules: readonly Rule[];
  /** The command's exit code (the highest one set wins). */
  exitCode: number;
  /** Whether stdout is a terminal (text output may then use alignment for humans). */
  readonly interactive?: boolean;
}

export function setExit(ctx: CliContext, code: number): void {
  ctx.exitCode = Math.max(ctx.exitCode, code);
}

/** commander accumulator for options that may be given several times (`--state a --state b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** meshguard's version from package.json. */
export function version(): string {
  return packageInfo().version;
}

/** Where a command reads the cluster state from: files, or a live cluster (kubeconfig and context). */
export interface StateFlags {
  readonly state?: string[];
  readonly kubeconfig?: string;
  /** The kubeconfig context instead of current-context (kubectl --context). */
  readonly context?: string;
}

/**
 * Files or a live cluster, not both, as the commands that read a cluster require. `--context` alone
 * means a live cluster through the default kubeconfig chain, as with kubectl.
 */
export function stateArgs(opts: StateFlags, required: boolean): void {
  const hasState = (opts.state?.length ?? 0) > 0;
  if (hasState && opts.kubeconfig !== undefined) throw new InputError('give either --state or --kubeconfig, not both');
  if (hasState && opts.context !== undefined) throw new InputError('--context selects a live cluster; it does not go with --state');
  if (required && !hasState && opts.kubeconfig === undefined && opts.context === undefined) {
    throw new InputError('one of --state PATH or --kubeconfig FILE (or --context NAME) is required');
  }
}

/**
 * The cluster state as a MemoryState the caller may change (check applies admitted objects to it): read
 * from files, or listed once from a live cluster (the same lists `meshguard snapshot` writes; no watches,
 * so a one-shot command fails fast on an unreachable cluster instead of retrying).
 */
export async function loadMutableState(opts: StateFlags, limits: InputLimits = DEFAULT_INPUT_LIMITS): Promise<MemoryState> {
  if (opts.state && opts.state.length > 0) return loadSnapshot(opts.state, { limits });
  // The listed objects are used as they are (no YAML dump and re-parse in between). Imported here:
  // the Kubernetes client takes ~0.4 s to load, which commands reading files should not pay.
  const { listClusterObjects } = await import('../state/dump.ts');
  const { objects } = await listClusterObjects({
    ...(opts.kubeconfig !== undefined ? { kubeconfigPath: opts.kubeconfig } : {}),
    ...(opts.context !== undefined ? { context: opts.context } : {}),
  });
  return stateFromObjects(objects, { label: 'live copy', configMapNamespaces: istioNamespaces(objects) });
}

/** The entry of `allowed` that `value` names, in any letter case, else an InputError. */
export function choice<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!found) throw new InputError(`${flag}: must be one of ${allowed.join(', ')} (got "${value}")`);
  return found;
}

/** The size-bound flags of every command that reads files (src/state/io/input.ts). */
export interface LimitFlags {
  readonly maxInputBytes?: string;
  readonly maxYamlBytes?: string;
}

export function addLimitOptions(cmd: Command): Command {
  return cmd
    .option('--max-input-bytes <size>', `largest file or stream read (default ${formatBytes(DEFAULT_INPUT_LIMITS.maxBytes)})`)
    .option('--max-yaml-bytes <size>', `largest YAML text parsed; JSON is not bounded by this (default ${formatBytes(DEFAULT_INPUT_LIMITS.maxYamlBytes)})`);
}

export function inputLimits(flags: LimitFlags): InputLimits {
  const maxBytes = flags.maxInputBytes !== undefined ? parseByteSize('--max-input-bytes', flags.maxInputBytes) : DEFAULT_INPUT_LIMITS.maxBytes;
  const maxYamlBytes = flags.maxYamlBytes !== undefined ? parseByteSize('--max-yaml-bytes', flags.maxYamlBytes) : DEFAULT_INPUT_LIMITS.maxYamlBytes;
  return { maxBytes, maxYamlBytes: Math.min(maxYamlBytes, maxBytes) };
}
