// What the commands' option parsers need at registration: nothing heavier than this.

/** A bad argument or option on the command line: main prints it and exits 2, as for bad configuration. */
export class UsageError extends Error {
  readonly code = "UsageError";
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Largest count a command takes: more is a typo (1e9 workers), not a plan. */
export const MAX_COUNT = 1_000_000;

export function parseCount(value: string, what = "count"): number {
  const parsed = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isInteger(parsed) || parsed < 0)
    throw new UsageError(`${what} must be a whole number >= 0; given ${JSON.stringify(value)}`);
  if (parsed > MAX_COUNT)
    throw new UsageError(`${what} must be at most ${MAX_COUNT}; given ${JSON.stringify(value)}`);
  return parsed;
}
