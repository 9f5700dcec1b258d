import { pino, type DestinationStream, type Level, type Logger } from 'pino';

// Log lines are bounded: every field of a record comes from a request (names, the user, finding
// messages that list victims, rule errors), and a hostile object must not turn one decision into a
// megabyte log line that floods the node's log pipeline. Strings are cut at MAX_LOG_STRING characters,
// lists at MAX_LOG_ITEMS entries, nesting at MAX_LOG_DEPTH; what was cut is said in place.

export const MAX_LOG_STRING = 512;
export const MAX_LOG_ITEMS = 16;
export const MAX_LOG_DEPTH = 4;

function bound(v: unknown, depth: number): unknown {
  if (typeof v === 'string') {
    return v.length > MAX_LOG_STRING ? `${v.slice(0, MAX_LOG_STRING)}...(${v.length - MAX_LOG_STRING} more characters)` : v;
  }
  if (typeof v !== 'object' || v === null) return v;
  if (depth >= MAX_LOG_DEPTH) return '[too deep]';
  if (Array.isArray(v)) {
    const out = v.slice(0, MAX_LOG_ITEMS).map((x) => bound(x, depth + 1));
    if (v.length > MAX_LOG_ITEMS) out.push(`...(${v.length - MAX_LOG_ITEMS} more)`);
    return out;
  }
  // Errors and plain records: own enumerable fields (an Error's message and stack are not enumerable).
  const src = v instanceof Error ? { message: v.message } : (v as Record<string, unknown>);
  const keys = Object.keys(src);
  const out: Record<string, unknown> = {};
  for (const k of keys.slice(0, MAX_LOG_ITEMS * 2)) out[k] = bound(src[k], depth + 1);
  if (keys.length > MAX_LOG_ITEMS * 2) out['...'] = `${keys.length - MAX_LOG_ITEMS * 2} more fields`;
  return out;
}

/** pino `formatters.log`: the record with every string, list and nesting level bounded. */
export function boundLogRecord(record: Record<string, unknown>): Record<string, unknown> {
  return bound(record, 0) as Record<string, unknown>;
}

/** The webhook's logger: JSON lines, every record bounded. `destination` is for tests. */
export function createLogger(level: Level, version: string, destination?: DestinationStream): Logger {
  const options = { level, base: { app: 'meshguard', version }, formatters: { log: boundLogRecord } };
  return destination ? pino(options, destination) : pino(options);
}
