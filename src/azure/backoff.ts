/**
 * Throttling remembered across calls and ticks. When a service answers 429 (or 503) with Retry-After, the
 * wait it asked for is noted here per kind of call of one region: no call of that kind goes to the region
 * before then, and one that cannot wait that long within its own deadline gives up at once (BackoffError)
 * instead of holding the tick.
 *
 * Kinds of call: ARM `read` and `write`; on ml.azure.com (another service, throttled apart from ARM), the
 * index API's `index-list` and the execution API's `resume`.
 */

export const CALL_KINDS = ["read", "write", "index-list", "resume"] as const;
export type CallKind = (typeof CALL_KINDS)[number];

/** The calls of a kind, as status and errors say it ("reads in back-off ..."). */
export const CALL_NOUNS: Record<CallKind, string> = {
  read: "reads",
  write: "writes",
  "index-list": "index listings",
  resume: "resumes",
};

/** One kind of call in back-off: until when, and why. */
export interface BackoffState {
  call: CallKind;
  /** Epoch ms when calls may go again. */
  until: number;
  /** What the service answered, e.g. "HTTP 429, Retry-After 8 s". */
  reason: string;
}

export class Backoff {
  private readonly states = new Map<CallKind, BackoffState>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The service asked for `ms` of quiet for calls of `call`: extend the back-off (never shorten it). */
  note(call: CallKind, ms: number, reason: string): void {
    const until = this.now() + Math.max(0, ms);
    const known = this.states.get(call);
    if (!known || until > known.until) this.states.set(call, { call, until, reason });
  }

  /** Milliseconds before a call of `call` may go (0 when it may go now). */
  remainingMs(call: CallKind): number {
    const state = this.states.get(call);
    if (!state) return 0;
    const left = state.until - this.now();
    if (left <= 0) {
      this.states.delete(call);
      return 0;
    }
    return left;
  }

  /** Back-offs in force now (for status, metrics and the tick log). */
  active(): BackoffState[] {
    return CALL_KINDS.filter((call) => this.remainingMs(call) > 0).map((call) => ({
      ...this.states.get(call)!,
    }));
  }
}

/** A call not made (or given up) because its region is in back-off longer than the caller can wait. */
export class BackoffError extends Error {
  readonly code = "Backoff";
  constructor(
    readonly call: CallKind,
    readonly until: number,
    reason: string,
  ) {
    super(
      `${CALL_NOUNS[call]} in back-off until ${new Date(until).toISOString()} (${reason}); not sent before then`,
    );
    this.name = "BackoffError";
  }
}

/**
 * When a signal's deadline falls (epoch ms), for signals made by a deadline (the controller's withDeadline):
 * a retry then knows whether the wait a service asks for fits before it. A signal may be forwarded through
 * any number of calls; the deadline travels with it.
 */
const deadlines = new WeakMap<AbortSignal, number>();

export function markDeadline(signal: AbortSignal, at: number): void {
  deadlines.set(signal, at);
}

export function deadlineOf(signal: AbortSignal | undefined): number | undefined {
  return signal ? deadlines.get(signal) : undefined;
}
