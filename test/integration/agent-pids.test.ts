import { spawn } from "node:child_process";
import { readdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  chooseTargets,
  judgePidFile,
  processInfo,
  recordSignalled,
  scanPidDir,
  signalledBefore,
  SIGNALLED_FILE,
} from "../../src/agent/pids.js";
import { killQuietly, tempDir } from "./agent-support.js";

const children: Array<ReturnType<typeof spawn>> = [];
function sleeper(): number {
  const child = spawn("sleep", ["30"], { stdio: "ignore" });
  children.push(child);
  return child.pid!;
}
const orphans: number[] = [];
afterEach(() => {
  children.splice(0).forEach(killQuietly);
  for (const pid of orphans.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

describe("PID files", () => {
  it("reads a process's start time from /proc", () => {
    const info = processInfo(process.pid)!;
    expect(info.ppid).toBe(process.ppid);
    expect(info.startedAtMs).toBeLessThanOrEqual(Date.now());
    // Started no earlier than when the test runner process was started by Node's clock.
    expect(info.startedAtMs).toBeGreaterThan(Date.now() - process.uptime() * 1000 - 3_000);
  });

  it("trusts a live process that started before its PID file was written", () => {
    const pid = sleeper();
    expect(judgePidFile(String(pid), Date.now())).toEqual({ status: "live", pid });
  });

  it("skips a PID that now belongs to a process started after the file was written (PID reuse)", () => {
    const pid = sleeper();
    const verdict = judgePidFile(String(pid), Date.now() - 3_600_000);
    expect(verdict.status).toBe("reused");
  });

  it("skips a process that is gone, and files that hold no PID", async () => {
    const child = spawn("true", { stdio: "ignore" });
    await new Promise((resolve) => child.once("exit", resolve));
    expect(judgePidFile(String(child.pid), Date.now()).status).toBe("gone");
    expect(judgePidFile("12ab", Date.now()).status).toBe("invalid");
    expect(judgePidFile("", Date.now()).status).toBe("invalid");
    expect(judgePidFile(String(process.pid), Date.now()).status).toBe("invalid");
  });

  it("scans a folder: live, reused, gone and junk files; only *.pid", () => {
    const dir = tempDir("pids");
    const live = sleeper();
    const reused = sleeper();
    writeFileSync(join(dir, "live.pid"), String(live));
    writeFileSync(join(dir, "reused.pid"), String(reused));
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(dir, "reused.pid"), hourAgo, hourAgo);
    writeFileSync(join(dir, "junk.pid"), "not a pid");
    writeFileSync(join(dir, "notes.txt"), String(live));
    const states = scanPidDir(dir);
    expect(Object.fromEntries(states.map((state) => [state.workerId, state.verdict.status]))).toEqual({
      junk: "invalid",
      live: "live",
      reused: "reused",
    });
    expect(chooseTargets(states)).toEqual([live]);
    expect(scanPidDir(join(dir, "missing"))).toEqual([]);
  });

  it("wrap mode: the wrapped child is a target only once a PID file names it, and not when one below it exists", () => {
    const dir = tempDir("wrap");
    // A shell (the wrapped child) running a sleep (the real worker, which writes its own PID file).
    const shell = spawn("sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" });
    children.push(shell);
    // No PID file yet: the child is still starting, nobody is ready.
    expect(chooseTargets(scanPidDir(dir), shell.pid)).toEqual([]);
    // A PID file for the child: the child.
    writeFileSync(join(dir, "agent.pid"), String(shell.pid));
    expect(chooseTargets(scanPidDir(dir), shell.pid)).toEqual([shell.pid]);
    return new Promise<void>((resolve, reject) => {
      // Wait for the shell's child to exist, then give it a PID file: the shell is dropped.
      const started = Date.now();
      const look = () => {
        const grandchild = findChildOf(shell.pid!);
        if (grandchild !== undefined) {
          writeFileSync(join(dir, "worker.pid"), String(grandchild));
          orphans.push(grandchild);
          try {
            expect(chooseTargets(scanPidDir(dir), shell.pid)).toEqual([grandchild]);
            resolve();
          } catch (error) {
            reject(error);
          }
        } else if (Date.now() - started > 5_000) reject(new Error("the shell's child never appeared"));
        else setTimeout(look, 20);
      };
      look();
    });
  });

  it("remembers signalled workers by PID and start time: not a process that reused the PID, not one that is gone", async () => {
    const dir = tempDir("signalled");
    const leaving = sleeper();
    const other = sleeper();
    recordSignalled(dir, [leaving]);
    expect(signalledBefore(dir)(leaving)).toBe(true);
    expect(signalledBefore(dir)(other)).toBe(false);
    // The same PID with another start time is another process (PID reuse).
    const started = processInfo(other)!.startedAtMs;
    writeFileSync(join(dir, SIGNALLED_FILE), JSON.stringify([{ pid: other, startedAtMs: started - 5_000 }]));
    expect(signalledBefore(dir)(other)).toBe(false);
    // A worker that has left drops out at the next write; the file is not a *.pid file.
    recordSignalled(dir, [leaving]);
    const child = children.find((c) => c.pid === leaving)!;
    const gone = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await gone;
    expect(signalledBefore(dir)(leaving)).toBe(false);
    recordSignalled(dir, [other]);
    expect(JSON.parse(readFileSync(join(dir, SIGNALLED_FILE), "utf8"))).toEqual([
      { pid: other, startedAtMs: started },
    ]);
    expect(scanPidDir(dir)).toEqual([]);
  });
});

/** A process whose parent is `parent`, found by walking /proc. */
function findChildOf(parent: number): number | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const info = processInfo(Number(name));
    if (info?.ppid === parent) return info.pid;
  }
  return undefined;
}
