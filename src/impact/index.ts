// Public API of the impact layer: which pods a change touches (per direction or L7) and the before/after
// comparison judged per identity class. Rules import from here and from src/policy.

export * from './change-kinds.ts';
export * from './touched.ts';
export * from './compare.ts';
export * from './decided-by.ts';
export * from './dns-servers.ts';
export * from './units.ts';
