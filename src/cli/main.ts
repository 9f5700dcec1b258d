// Entry point of the compiled CLI (bin/meshguard.js imports it). Sets the exit code and lets the process
// end on its own, so output is flushed and `serve` keeps running until it is told to stop.

try {
  // Imported here so that a broken rule module (the registry loads them all) is reported like any bug.
  const { runCli } = await import('./program.ts');
  process.exitCode = await runCli(process.argv.slice(2));
} catch (e) {
  const msg = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
  process.stderr.write(`meshguard: internal error: ${msg}\n`);
  process.exitCode = 3;
}
