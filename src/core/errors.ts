// Errors that end a command with exit code 2 and one line on stderr (bad flag, unreadable file,
// invalid YAML or config). Anything else is a bug and is reported as such.

export class InputError extends Error {
  /** File the problem is in, and 1-based line when known. */
  readonly file?: string;
  readonly line?: number;
  constructor(message: string, where?: { file?: string; line?: number }) {
    const prefix = where?.file ? `${where.file}${where.line ? `:${where.line}` : ''}: ` : '';
    super(prefix + message);
    this.name = 'InputError';
    if (where?.file !== undefined) this.file = where.file;
    if (where?.line !== undefined) this.line = where.line;
  }
}
