// The object model lives in src/core/objects.ts (the Change in core needs it, and core imports nothing
// else). Re-exported under its old path for the files not yet rewritten; it goes once they are.

export type * from '../core/objects.ts';
