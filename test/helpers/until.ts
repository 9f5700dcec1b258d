/**
 * Waits for a condition that I/O brings about (a server that stops listening, an answer counted),
 * re-checking it every few milliseconds. The deadline is no window on the behaviour under test: it only
 * turns a hang into a failure that names what never came.
 */
export async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One turn of the event loop: promise callbacks queued so far have run. */
export const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
