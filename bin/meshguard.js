#!/usr/bin/env node
// Entry point of the `meshguard` command: runs the compiled CLI (npm run build writes dist/).
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  process.stderr.write(`meshguard: Node.js >= 24 is required (this is ${process.version}); run it through npx or npm scripts\n`);
  process.exit(2);
}
try {
  await import('../dist/cli/main.js');
} catch (err) {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli/main.js')) {
    process.stderr.write('meshguard: not built yet; run `npm run build` first\n');
    process.exit(2);
  }
  throw err;
}
