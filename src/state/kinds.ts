// The kind table lives in src/core/kinds.ts (the Change in core needs it, and core imports nothing
// else). Re-exported under its old path for the files not yet rewritten; it goes once they are.

export * from '../core/kinds.ts';
