// V8 settings for a long-running webhook, applied by `meshguard serve` at start.
//
// Allocation-site pretenuring: V8 watches which allocation sites (object literals, array literals in a
// given function) produce objects that survive young-generation collections, and makes such sites
// allocate straight into the old generation. meshguard's state is built by the same code that turns
// each admission request into its slim objects and policy models (transform, model): loading the
// cluster marks those sites long-lived, so from then on every request's own objects, which die with
// the request, are allocated in the old generation. There they are garbage only a major collection
// frees, and, while they wait, they keep the young objects they point to alive through every
// scavenge, which copies and then promotes those too. Measured at 10k pods with every review new
// (BENCHMARKS.md): old-space growth 1.7 KB per request with pretenuring, 0.13 KB without; per
// scavenge 230 KB promoted against 100 KB, pauses 1.3-1.9 ms against 1.0-1.2 ms; under load 3-4 major
// collections against 2 in 20 s at 500 req/s, 12-13 against 6-8 at full load (fewer at 50k pods).
//
// The flag cannot be given in NODE_OPTIONS (Node refuses V8 flags outside a short list there), so it
// is set here, before the state is loaded. Node 24 does not freeze V8's flags after start, and this one
// is read when V8 processes its pretenuring feedback, so setting it now takes effect (the test checks
// the effect, not the call). It also changes V8's flag hash, so a V8 code cache made by a process
// without it (NODE_COMPILE_CACHE) would be rejected: meshguard uses none. An explicit
// --[no-]allocation-site-pretenuring on node's command line, in any spelling V8 accepts (one or two
// leading dashes, dashes or underscores), is the operator's choice and is left alone.

import v8 from 'node:v8';

const PRETENURING_FLAG = /^--?(no[-_]?)?allocation[-_]site[-_]pretenuring$/;

/** What serve did: 'off' when it turned pretenuring off, 'node flags' when node's flags decide. */
export type PretenuringSetting = 'off' | 'node flags';

/** Turns off allocation-site pretenuring unless node's command line sets it (see above). */
export function tuneHeapForServing(execArgv: readonly string[] = process.execArgv): PretenuringSetting {
  if (execArgv.some((a) => PRETENURING_FLAG.test(a))) return 'node flags';
  v8.setFlagsFromString('--no-allocation-site-pretenuring');
  return 'off';
}
