// Counts turns of the event loop: a task that runs once per turn (a chain of setImmediate) until
// stopped, so that a test can tell whether work handed the loop back between two of its steps.

/** A task that runs once per turn of the event loop (a chain of setImmediate) until stopped. */
export function loopTurns(onTurn: () => void = () => undefined): { readonly turns: number; stop(): void } {
  let turns = 0;
  let running = true;
  const turn = (): void => {
    if (!running) return;
    turns++;
    onTurn();
    setImmediate(turn);
  };
  setImmediate(turn);
  return {
    get turns() {
      return turns;
    },
    stop() {
      running = false;
    },
  };
}
