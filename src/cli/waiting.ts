/**
 * On an interactive terminal, say what a command still waits for once a wait grows long, so that a hung
 * endpoint never looks like a hung command. Quiet when stderr is not a terminal (logs tell the story).
 */
export function waitNotice(
  options: { limitSeconds: number; afterMs?: number; everyMs?: number },
  stream: NodeJS.WriteStream = process.stderr,
) {
  const pending = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  const say = () => {
    if (pending.size === 0) return;
    const oldest = Math.min(...pending.values());
    const waited = Math.round((Date.now() - oldest) / 1000);
    stream.write(
      `workforce: waiting for ${[...pending.keys()].join(", ")} (up to ${options.limitSeconds} s; ${waited} s so far)\n`,
    );
  };
  if (stream.isTTY) {
    const first = setTimeout(() => {
      say();
      timer = setInterval(say, options.everyMs ?? 5_000);
      timer.unref();
    }, options.afterMs ?? 1_000);
    first.unref();
    timer = first;
  }
  return {
    onCall(what: string, state: "start" | "end"): void {
      if (state === "start") pending.set(what, Date.now());
      else pending.delete(what);
    },
    stop(): void {
      clearTimeout(timer);
      clearInterval(timer);
    },
  };
}
