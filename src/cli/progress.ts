import type { HireProgress } from "../regions/types.js";

/**
 * A one-line progress bar on an interactive terminal (stderr), for long hires. Returns undefined when stderr
 * is not a TTY: logs already tell the story there.
 */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr) {
  if (!stream.isTTY) return undefined;
  const width = 30;
  let last = "";
  return {
    update(progress: HireProgress): void {
      const settled = progress.done + progress.failed;
      const filled = progress.total > 0 ? Math.round((settled / progress.total) * width) : width;
      const line = `${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${progress.done}/${progress.total}${progress.failed ? ` (${progress.failed} failed)` : ""}`;
      if (line === last) return;
      last = line;
      stream.write(`\r${line}`);
    },
    finish(): void {
      if (last) stream.write("\n");
    },
  };
}
