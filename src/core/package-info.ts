// What meshguard knows about itself from package.json: its version and its project URL. Read once, at
// run time: src/core/ and dist/core/ both sit two levels below package.json, which ships in the npm package and
// the container image.

import { readFileSync } from 'node:fs';

export interface PackageInfo {
  readonly version: string;
  /** The project's web page (package.json `homepage`), when it is an https URL. */
  readonly homepage?: string;
}

let cached: PackageInfo | undefined;

export function packageInfo(): PackageInfo {
  if (cached) return cached;
  let pkg: { version?: unknown; homepage?: unknown } = {};
  try {
    pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as typeof pkg;
  } catch {
    // A broken install still runs; it only loses its version and links.
  }
  const homepage = typeof pkg.homepage === 'string' && pkg.homepage.startsWith('https://') ? pkg.homepage.replace(/\/+$/, '') : undefined;
  cached = { version: typeof pkg.version === 'string' ? pkg.version : '0.0.0', ...(homepage ? { homepage } : {}) };
  return cached;
}
