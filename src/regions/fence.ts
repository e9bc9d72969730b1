/**
 * A write fence: what a replica checks right before every write it makes to the world (a job PUT, a
 * cancel, a drain message, a drain-ledger write). With leader election it says whether this replica still
 * holds the lease by its own clock; without it there is no fence and every write may go.
 */
export interface WriteFence {
  /** Throws FencedError when this replica may not write now. `write` names the write, for the error. */
  check(write: string): void;
  /** Milliseconds of writing left by this replica's clock (none: no end known in advance). */
  remainingMs?(): number;
  /**
   * Calls `onChange` whenever the end moves (a renewal, or the lease lost or given up before its end);
   * returns a function that stops it.
   */
  watch?(onChange: () => void): () => void;
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

/**
 * For a write whose SDK retries by itself (Service Bus sends, Storage uploads), where no check can run
 * before each retry: a signal that aborts, with the fence's FencedError as its reason, once the fence
 * closes (the lease runs out and is not renewed meanwhile, or is lost or given up before its end) or when
 * `signal` aborts. A request already out may still have gone; no retry goes after the lease's end.
 * `done()` clears the timer and stops watching the fence.
 */
export function fencedSignal(
  fence: WriteFence | undefined,
  write: string,
  signal?: AbortSignal,
): { signal: AbortSignal | undefined; fenced: () => FencedError | undefined; done: () => void } {
  if (!fence?.remainingMs) return { signal, fenced: () => undefined, done: () => undefined };
  const controller = new AbortController();
  let fenced: FencedError | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => controller.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  if (signal?.aborted) onAbort();
  const arm = () => {
    clearTimeout(timer);
    if (controller.signal.aborted) return;
    try {
      fence.check(write);
    } catch (error) {
      fenced = error instanceof FencedError ? error : new FencedError(write, String(error));
      controller.abort(fenced);
      return;
    }
    // A renewal moves the end: look again then.
    timer = setTimeout(arm, Math.max(1, Math.ceil(fence.remainingMs!())));
    timer.unref?.();
  };
  arm();
  // A lease lost (409) or given up is the fence's end now, not at the time the timer was set for.
  const unwatch = controller.signal.aborted ? undefined : fence.watch?.(arm);
  return {
    signal: controller.signal,
    fenced: () => fenced,
    done: () => {
      clearTimeout(timer);
      unwatch?.();
      signal?.removeEventListener("abort", onAbort);
    },
  };
}
