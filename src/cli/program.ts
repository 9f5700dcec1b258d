// The `meshguard` command line: builds the commander program and runs it to an exit code, without
// touching process.exit, so tests can run it in-process and main.ts can let the process end naturally.

import { Command, CommanderError } from 'commander';

import { InputError } from '../core/errors.ts';
import { allRules } from '../rules/registry.ts';
import type { Rule } from '../core/rule.ts';
import { auditCommand } from './audit.ts';
import { checkCommand } from './check.ts';
import { EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, version, type CliContext, type CliIO } from './common.ts';
import { rulesCommand } from './rules.ts';
import { serveCommand } from './serve.ts';
import { snapshotCommand } from './snapshot.ts';
import { traceCommand } from './trace.ts';

export interface RunOptions {
  readonly io?: CliIO;
  /** The rule catalogue (default: the registry); tests pass their own. */
  readonly rules?: readonly Rule[];
}

const processIO: CliIO = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  stderrIsTTY: process.stderr.isTTY === true,
};

/** One line: commander's own messages start with "error: " and may span lines. */
function oneLine(s: string): string {
  return s.replace(/^error:\s*/i, '').replace(/\s*\n\s*/g, ' ').trim();
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('meshguard')
    .description('admission checks for clusters that run Cilium and Istio together')
    .version(version(), '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout(s),
      writeErr: (s) => ctx.io.stderr(s),
      outputError: (s, write) => write(`meshguard: ${oneLine(s)}\n`),
    });
  program.addCommand(serveCommand(ctx));
  program.addCommand(checkCommand(ctx));
  program.addCommand(auditCommand(ctx));
  program.addCommand(rulesCommand(ctx));
  program.addCommand(snapshotCommand(ctx));
  // Every subcommand reports usage errors the same way and never calls process.exit.
  for (const cmd of program.commands) {
    cmd.exitOverride().configureOutput(program.configureOutput()).showSuggestionAfterError(true);
  }
  // trace brings its own output and exit handling (it sets process.exitCode; runCli collects it).
  program.addCommand(traceCommand(ctx.io));
  return program;
}

/** Run `meshguard <argv>` (argv without node and script) and return the exit code. */
export async function runCli(argv: readonly string[], opts: RunOptions = {}): Promise<number> {
  const ctx: CliContext = { io: opts.io ?? processIO, rules: opts.rules ?? allRules(), exitCode: EXIT_OK };
  const program = buildProgram(ctx);
  // Commands that report through process.exitCode (trace) are read back and the caller's value restored.
  const outer = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync([...argv], { from: 'user' });
    const set = typeof process.exitCode === 'number' ? process.exitCode : 0;
    return Math.max(ctx.exitCode, set);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end in a CommanderError with exit code 0; usage errors are already printed.
      return e.exitCode === 0 ? EXIT_OK : EXIT_INPUT;
    }
    if (e instanceof InputError) {
      ctx.io.stderr(`meshguard: ${oneLine(e.message)}\n`);
      return EXIT_INPUT;
    }
    const msg = e instanceof Error ? e.message : String(e);
    ctx.io.stderr(`meshguard: internal error: ${oneLine(msg)}\n`);
    return EXIT_INTERNAL;
  } finally {
    process.exitCode = outer;
  }
}
