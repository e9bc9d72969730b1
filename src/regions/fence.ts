/**
 * A write fence: what a replica checks right before every write it makes to the world (a job PUT, a
 * cancel, a drain message, a drain-ledger write). With leader election it says whether this replica still
 * holds the lease by its own clock; without it there is no fence and every write may go.
 */
export interface WriteFence {
  /** Throws FencedError when this replica may not write now. `write` names the write, for the error. */
  check(write: string): void;
}

/** A write refused because this replica does not hold the leader lease (by its own clock) right now. */
export class FencedError extends Error {
  readonly code = "Fenced";
  constructor(write: string, why: string) {
    super(`${write} not sent: ${why}`);
    this.name = "FencedError";
  }
}

export function isFenced(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if (e instanceof FencedError) return true;
  return false;
}
