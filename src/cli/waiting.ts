/**
 * On an interactive terminal, say what a command still waits for once a wait grows long, so that a hung
 * endpoint never looks like a hung command. Quiet when stderr is not a terminal (logs tell the story).
 * The first notice comes `afterMs` after the oldest call still waiting started, not after the command
 * started: building its clients can take longer than that on a busy machine, and a notice due before any
 * call had started used to be skipped, leaving a hung call unexplained until the next one.
 */
export function waitNotice(
  options: { limitSeconds: number; afterMs?: number; everyMs?: number },
  stream: NodeJS.WriteStream = process.stderr,
) {
  const afterMs = options.afterMs ?? 1_000;
  const everyMs = options.everyMs ?? 5_000;
  const pending = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const say = () => {
    const oldest = Math.min(...pending.values());
    const waited = Math.round((Date.now() - oldest) / 1000);
    stream.write(
      `workforce: waiting for ${[...pending.keys()].join(", ")} (up to ${options.limitSeconds} s; ${waited} s so far)\n`,
    );
  };
  const arm = (ms: number) => {
    timer = setTimeout(due, ms);
    timer.unref();
  };
  function due(): void {
    timer = undefined;
    if (pending.size === 0) return; // armed again by the next call
    const wait = Math.min(...pending.values()) + afterMs - Date.now();
    if (wait > 0) return arm(wait);
    say();
    arm(everyMs);
  }
  return {
    onCall(what: string, state: "start" | "end"): void {
      if (state === "end") {
        pending.delete(what);
        return;
      }
      pending.set(what, Date.now());
      if (stream.isTTY && !stopped && timer === undefined) arm(afterMs);
    },
    stop(): void {
      stopped = true;
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
