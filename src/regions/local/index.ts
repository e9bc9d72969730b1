import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "../../logging/logger.js";
import type { DrainChannel } from "../../backchannel/types.js";
import { readPidFile } from "../../queue/pid-file.js";
import type { RegionContext } from "../context.js";
import type {
  CallOptions,
  CancelResult,
  DrainResult,
  HireResult,
  Region,
  RegionObservation,
} from "../types.js";
import type { LocalRegionConfig } from "./config.js";
import { expandCommand, unknownPlaceholders, workforceCliPath } from "./command.js";
import { readProcessIdentity, isSameProcess } from "./proc.js";
import { RecordStore, type WorkerRecord } from "./records.js";
import { ExitHistory, classifyExit, logTail, type ProcessEnd } from "./exits.js";
import type { ExpiredDrain, WorkerExit } from "../types.js";

export type { LocalRegionConfig } from "./config.js";
export { localRegionSchema } from "./config.js";

/** A worker as the region sees it now. */
export type LocalWorkerState = "pending" | "running" | "draining";

export interface LocalWorker {
  id: string;
  state: LocalWorkerState;
  pid?: number;
  hiredAt: string;
}

/** Longest wait for the `exit` event of a child that /proc already shows as ended (a zombie not reaped yet). */
const EXIT_EVENT_WAIT_MS = 2_000;

/** How long after the first SIGTERM an explicit stop sends the second (our worker: stop the tasks now). */
const SECOND_SIGTERM_MS = 500;

/**
 * Workers are processes on this machine, started from an argv template (no shell), each in its own
 * process group (the daemon's Ctrl-C does not reach them; a restarted daemon finds them again).
 *
 * stateDir holds `workers/{id}.json` (one record per worker, written atomically), `pids/{id}/` (each worker's
 * own JOBQ_PID_DIR: a worker that wrote its PID file has started work) and `logs/{id}.log` (stdout + stderr).
 *
 * States: pending = hired, and its process not started yet (startupDelaySeconds) or not yet written its
 * PID file; running = PID file present, alive, not asked to leave; draining = asked to leave (drain, or a
 * cancel of a pending one), or seen running and its PID file gone (on its way out), still alive. Exited
 * workers are forgotten. A recorded PID whose process is gone
 * or whose start time differs (the PID was reused) is never signalled.
 */
export class LocalRegion implements Region {
  readonly name: string;
  readonly kind = "local";
  readonly weight: number;
  readonly maxWorkers?: number;

  private readonly log: Logger;
  private readonly records: RecordStore;
  private readonly pidDir: string;
  private readonly logDir: string;
  private readonly drainChannel?: DrainChannel;
  /** Delayed starts scheduled by this process (a restarted daemon reschedules from the records). */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Every public operation and every delayed start runs one at a time: records are read-modify-write. */
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** How each process this daemon started ended (its `exit` event), until its record is forgotten. */
  private readonly ends = new Map<string, ProcessEnd>();
  /** Resolves when a process this daemon started has ended and its `exit` event has been handled. */
  private readonly endEvents = new Map<string, Promise<void>>();
  private readonly exitHistory: ExitHistory;
  /** Exits seen since the last write of the history (written at the end of each sync). */
  private newExits: WorkerExit[] = [];

  constructor(
    private readonly config: LocalRegionConfig,
    private readonly context: RegionContext,
  ) {
    this.name = config.name;
    this.weight = config.weight;
    if (config.maxWorkers !== undefined) this.maxWorkers = config.maxWorkers;
    this.log = context.logger;
    const unknown = unknownPlaceholders(config.command);
    if (unknown.length > 0) {
      throw new Error(
        `region ${config.name}: command: unknown placeholder ${unknown.join(", ")} (expected {queue}, {concurrency}, {workerId}, {node} or {workforce})`,
      );
    }
    this.records = new RecordStore(join(config.stateDir, "workers"));
    this.pidDir = join(config.stateDir, "pids");
    this.logDir = join(config.stateDir, "logs");
    this.exitHistory = new ExitHistory(join(config.stateDir, "exits.json"));
    if (config.backChannel && context.createDrainChannel) {
      this.drainChannel = context.createDrainChannel(config.name, config.backChannel);
    }
  }

  private exclusive<T>(step: () => Promise<T>): Promise<T> {
    const next = this.chain.then(step, step);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Every worker with its state, after starting due delayed workers and forgetting exited ones. */
  async workers(): Promise<LocalWorker[]> {
    return this.exclusive(async () =>
      (await this.sync()).map(({ record, state }) => describe(record, state)),
    );
  }

  async observe(options: CallOptions = {}): Promise<RegionObservation> {
    return this.exclusive(async () => {
      const workers = await this.sync();
      let running = workers.filter((w) => w.state === "running").length;
      let draining = workers.filter((w) => w.state === "draining").length;
      const pending = workers.filter((w) => w.state === "pending").length;
      if (this.drainChannel) {
        const ids = workers.filter((w) => w.state === "running").map((w) => w.record.id);
        const inFlight = Math.min(await this.drainChannel.inFlight(ids, options), running);
        running -= inFlight;
        draining += inFlight;
      }
      return {
        running,
        pending,
        draining,
        capacity: this.config.capacity - (running + pending + draining),
        exits: await this.exitHistory.list(),
        expiredDrains: this.drainChannel?.expiredDrains?.() ?? this.expiredSignalDrains(workers),
      };
    });
  }

  async hire(count: number, options: CallOptions = {}): Promise<HireResult> {
    return this.exclusive(async () => {
      const errors: Error[] = [];
      const active = (await this.sync()).length;
      const room = Math.max(0, this.config.capacity - active);
      if (count > room) {
        errors.push(
          new Error(
            `region ${this.name}: asked to hire ${count}, room for ${room} (capacity ${this.config.capacity})`,
          ),
        );
      }
      let hired = 0;
      for (let i = 0; i < Math.min(count, room); i++) {
        if (options.signal?.aborted) {
          errors.push(new Error(`region ${this.name}: hire aborted after ${hired} of ${count}`));
          break;
        }
        const now = Date.now();
        const record: WorkerRecord = {
          id: `${this.name}-${randomBytes(6).toString("hex").slice(0, 8)}`,
          hiredAt: new Date(now).toISOString(),
          startAt: new Date(now + this.config.startupDelaySeconds * 1000).toISOString(),
        };
        try {
          await this.records.write(record);
          if (this.config.startupDelaySeconds > 0) this.schedule(record);
          else await this.start(record);
          hired++;
        } catch (error) {
          await this.records.remove(record.id).catch(() => undefined);
          errors.push(asError(error));
        }
      }
      if (hired > 0) this.log.info({ hired }, "workers hired");
      await this.flushExits();
      return { hired, errors };
    });
  }

  /**
   * Cancel up to `count` pending workers, newest first (the least advanced: with a start-up delay, the
   * furthest from starting). One whose process has not started is just forgotten. One whose process runs but
   * has not written its PID file gets the drain signal, sent to its whole process group: the command may be
   * a wrapper (`workforce agent -- ...`, a shell) that does not pass SIGINT on, since a terminal's Ctrl-C
   * reaches its worker through the group; signalled alone it would stay, and its worker with it, draining
   * forever. Our worker leaves at once when it holds no task, and finishes its task if it took one
   * meanwhile (its tasks run in their own process groups), so a cancel never loses a task.
   */
  async cancelPending(count: number, options: CallOptions = {}): Promise<CancelResult> {
    return this.exclusive(async () => {
      const pending = (await this.sync()).filter((w) => w.state === "pending").reverse();
      let cancelled = 0;
      const errors: Error[] = [];
      for (const { record } of pending.slice(0, Math.max(0, count))) {
        if (options.signal?.aborted) break;
        try {
          if (record.pid === undefined) {
            this.unschedule(record.id);
            await this.records.remove(record.id);
          } else {
            await this.records.write({ ...record, cancelRequestedAt: new Date().toISOString() });
            this.signal(record, this.config.drainSignal as NodeJS.Signals, true);
          }
          cancelled++;
        } catch (error) {
          errors.push(asError(error));
        }
      }
      if (cancelled > 0) this.log.info({ cancelled }, "pending workers cancelled");
      return { cancelled, errors };
    });
  }

  /** Ask up to `count` running workers (oldest first, never one already draining) to finish and leave. */
  async drain(count: number, options: CallOptions = {}): Promise<DrainResult> {
    return this.exclusive(async () => {
      const running = (await this.sync()).filter((w) => w.state === "running");
      if (this.drainChannel) {
        return this.drainChannel.requestDrain(
          count,
          running.map((w) => w.record.id),
          options,
        );
      }
      let drained = 0;
      const errors: Error[] = [];
      for (const { record } of running.slice(0, Math.max(0, count))) {
        if (options.signal?.aborted) break;
        try {
          // Recorded before the signal: a crash in between can leave a worker undrained, never drained twice.
          await this.records.write({ ...record, drainRequestedAt: new Date().toISOString() });
          // A worker that exited meanwhile is not counted; the next observation forgets it.
          if (this.signal(record, this.config.drainSignal as NodeJS.Signals)) drained++;
        } catch (error) {
          errors.push(asError(error));
        }
      }
      if (drained > 0) this.log.info({ drained, signal: this.config.drainSignal }, "drain requested");
      return { drained, errors };
    });
  }

  /**
   * Stop up to `count` running workers now (newest first), losing the task in hand: SIGTERM, a second
   * SIGTERM shortly after (our worker then stops its tasks and puts their messages back), SIGKILL to the
   * process group after killGraceSeconds. Only for an operator's explicit lay-off.
   */
  async cancelRunning(count: number, options: CallOptions = {}): Promise<CancelResult> {
    return this.exclusive(async () => {
      const workers = await this.sync();
      const running = workers.filter((w) => w.state === "running").reverse();
      const chosen = running.slice(0, Math.max(0, count)).map((w) => w.record);
      for (const record of chosen)
        await this.records.write({ ...record, stopRequestedAt: new Date().toISOString() });
      await this.stopProcesses(chosen, this.config.killGraceSeconds * 1000, options.signal);
      for (const record of chosen) await this.forgetIfGone(record);
      if (chosen.length > 0) this.log.warn({ cancelled: chosen.length }, "running workers stopped");
      return { cancelled: chosen.length, errors: [] };
    });
  }

  /**
   * Stop every worker of this region and forget them all (the embedded demo's Ctrl-C): nothing is left
   * behind. Workers not started yet are dropped; live ones get SIGTERM twice, then SIGKILL after graceMs.
   */
  async stopAll(graceMs = this.config.killGraceSeconds * 1000): Promise<void> {
    return this.exclusive(async () => {
      for (const id of this.timers.keys()) this.unschedule(id);
      const records = await this.records.list();
      const live = records.filter(
        (r) =>
          r.pid !== undefined && r.processStartTime !== undefined && isSameProcess(r.pid, r.processStartTime),
      );
      await this.stopProcesses(live, graceMs);
      for (const record of records) await this.forget(record);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.timers.keys()]) this.unschedule(id);
    await this.chain;
    await this.drainChannel?.close?.();
  }

  // --- internals -------------------------------------------------------------------------------------

  /** Start due workers, forget exited ones, and classify the rest. Call inside exclusive(). */
  private async sync(): Promise<Array<{ record: WorkerRecord; state: LocalWorkerState }>> {
    const records = await this.records.list();
    const started = await this.startedPids();
    const result: Array<{ record: WorkerRecord; state: LocalWorkerState }> = [];
    for (let record of records) {
      if (record.pid === undefined) {
        if (Date.parse(record.startAt) <= Date.now() && !this.closed) {
          try {
            record = await this.start(record);
          } catch (error) {
            this.log.error({ err: error, workerId: record.id }, "worker could not start; forgotten");
            await this.forget(record);
            continue;
          }
        } else {
          this.schedule(record);
          result.push({ record, state: record.cancelRequestedAt ? "draining" : "pending" });
          continue;
        }
      }
      if (record.processStartTime === undefined || !isSameProcess(record.pid!, record.processStartTime)) {
        this.noteExit(classifyExit(record, await this.endOf(record.id), Date.now()), record);
        await this.forget(record);
        continue;
      }
      const asked = record.drainRequestedAt ?? record.cancelRequestedAt ?? record.stopRequestedAt;
      const hasStarted = started.ids.has(record.id) || started.pids.has(record.pid!);
      if (hasStarted && !record.runningSeenAt) {
        // From now on a failure is not a failed start: it did start work.
        record = { ...record, runningSeenAt: new Date().toISOString() };
        await this.records.write(record);
      }
      // A worker removes its PID file as it leaves, a moment before its process ends: it is not starting
      // again. Counted as pending, it would be cancelled as surplus, or stand in for a worker to come.
      const leaving = asked || (!hasStarted && record.runningSeenAt !== undefined);
      result.push({ record, state: leaving ? "draining" : hasStarted ? "running" : "pending" });
    }
    await this.flushExits();
    return result;
  }

  /** Workers still alive past the drain timeout after their drain signal. */
  private expiredSignalDrains(workers: Array<{ record: WorkerRecord }>): ExpiredDrain[] {
    const timeoutMs = this.context.settings.drainTimeoutSeconds * 1000;
    return workers.flatMap(({ record }) => {
      const expiresAt = record.drainRequestedAt ? Date.parse(record.drainRequestedAt) + timeoutMs : Infinity;
      return expiresAt <= Date.now() ? [{ id: record.id, count: 1, at: expiresAt }] : [];
    });
  }

  /** Log an exit (a failure at warn, with its code and last output) and keep it for the history. */
  private noteExit(exit: WorkerExit, record: WorkerRecord): void {
    const failedLike =
      exit.outcome === "failed" || exit.outcome === "failed_start" || exit.outcome === "unknown";
    const lastOutput = failedLike ? logTail(join(this.logDir, `${record.id}.log`)) : undefined;
    const full: WorkerExit = { ...exit, ...(lastOutput ? { lastOutput } : {}) };
    this.ends.delete(record.id);
    this.endEvents.delete(record.id);
    this.newExits.push(full);
    const fields = {
      workerId: record.id,
      pid: record.pid,
      outcome: full.outcome,
      detail: full.detail,
      ...(full.ranSeconds !== undefined ? { ranSeconds: Math.round(full.ranSeconds * 10) / 10 } : {}),
      ...(lastOutput ? { lastOutput } : {}),
      log: join(this.logDir, `${record.id}.log`),
    };
    if (full.outcome === "failed_start")
      this.log.warn(fields, `worker failed to start (${full.detail}); forgotten`);
    else if (full.outcome === "failed") this.log.warn(fields, `worker failed (${full.detail}); forgotten`);
    else this.log.info(fields, `worker exited (${full.outcome}, ${full.detail}); forgotten`);
  }

  private async flushExits(): Promise<void> {
    const exits = this.newExits;
    this.newExits = [];
    await this.exitHistory.add(exits);
  }

  /**
   * Worker ids and PIDs named by PID files. Each worker has its own JOBQ_PID_DIR (`pids/{id}/`), as each
   * AzureML job has its own node: a node agent wrapping the worker signals only its own worker.
   */
  private async startedPids(): Promise<{ ids: Set<string>; pids: Set<number> }> {
    const ids = new Set<string>();
    const pids = new Set<number>();
    let workerDirs: string[] = [];
    try {
      workerDirs = await readdir(this.pidDir);
    } catch {
      // No worker has started yet.
    }
    for (const id of workerDirs) {
      let names: string[];
      try {
        names = await readdir(join(this.pidDir, id));
      } catch {
        continue; // not a folder, or gone meanwhile
      }
      for (const name of names) {
        if (!name.endsWith(".pid")) continue;
        const pid = await readPidFile(join(this.pidDir, id, name));
        if (pid === undefined) continue;
        ids.add(id);
        pids.add(pid);
      }
    }
    return { ids, pids };
  }

  private schedule(record: WorkerRecord): void {
    if (this.timers.has(record.id) || this.closed) return;
    const delay = Math.max(0, Date.parse(record.startAt) - Date.now());
    const timer = setTimeout(() => {
      this.timers.delete(record.id);
      // Re-read under the lock: it may have been cancelled meanwhile.
      void this.exclusive(() => this.sync()).catch((error: unknown) =>
        this.log.error({ err: error, workerId: record.id }, "delayed start failed"),
      );
    }, delay);
    timer.unref();
    this.timers.set(record.id, timer);
  }

  private unschedule(id: string): void {
    const timer = this.timers.get(id);
    if (timer) clearTimeout(timer);
    this.timers.delete(id);
  }

  /**
   * How a child of this daemon ended. A process that has just exited is a zombie until Node reaps it and
   * emits `exit` on the next turn of the event loop: /proc already says it is gone, so wait for the event
   * (briefly) rather than record an exit of unknown status. A worker this daemon did not start (a restart
   * found it) has no event to wait for.
   */
  private async endOf(id: string): Promise<ProcessEnd | undefined> {
    const event = this.endEvents.get(id);
    if (event && !this.ends.has(id)) {
      const timeout = new AbortController();
      await Promise.race([
        event,
        sleep(EXIT_EVENT_WAIT_MS, undefined, { signal: timeout.signal }).catch(() => undefined),
      ]);
      timeout.abort();
    }
    return this.ends.get(id);
  }

  /** Spawn the worker's process, detached, and record its PID and start time. */
  private async start(record: WorkerRecord): Promise<WorkerRecord> {
    this.unschedule(record.id);
    const argv = expandCommand(this.config.command, {
      queue: this.context.settings.queue ?? "",
      concurrency: String(this.context.settings.concurrency),
      workerId: record.id,
      node: process.execPath,
      workforce: workforceCliPath(),
    });
    mkdirSync(this.logDir, { recursive: true });
    const workerPidDir = join(this.pidDir, record.id);
    mkdirSync(workerPidDir, { recursive: true });
    const logFd = openSync(join(this.logDir, `${record.id}.log`), "a");
    let pid: number | undefined;
    try {
      const child = spawn(argv[0]!, argv.slice(1), {
        detached: true,
        stdio: ["ignore", logFd, logFd],
        env: {
          ...process.env,
          ...this.config.env,
          JOBQ_PID_DIR: workerPidDir,
          WORKFORCE_WORKER_ID: record.id,
        },
      });
      child.on("error", (error) =>
        this.log.error({ err: error, workerId: record.id }, "worker process error"),
      );
      this.endEvents.set(
        record.id,
        new Promise<void>((resolve) =>
          child.on("exit", (code, signal) => {
            this.ends.set(record.id, { code, signal, at: Date.now() });
            resolve();
          }),
        ),
      );
      child.unref();
      pid = child.pid;
    } finally {
      closeSync(logFd);
    }
    if (pid === undefined) {
      const message = `could not start ${JSON.stringify(argv[0])}`;
      this.noteExit(
        { workerId: record.id, outcome: "failed_start", at: Date.now(), detail: message },
        record,
      );
      throw new Error(`region ${this.name}: ${message} for worker ${record.id}`);
    }
    const identity = readProcessIdentity(pid);
    if (!identity) {
      const started = { ...record, pid, startedAt: new Date().toISOString() };
      const exit = classifyExit(started, this.ends.get(record.id), Date.now());
      const detail = this.ends.has(record.id) ? exit.detail : "exited at once";
      this.noteExit({ ...exit, outcome: "failed_start", detail }, started);
      throw new Error(
        `region ${this.name}: worker ${record.id} (PID ${pid}) exited at once; see ${join(this.logDir, `${record.id}.log`)}`,
      );
    }
    const updated: WorkerRecord = {
      ...record,
      pid,
      processStartTime: identity.startTime,
      startedAt: new Date().toISOString(),
    };
    await this.records.write(updated);
    this.log.info({ workerId: record.id, pid }, "worker process started");
    return updated;
  }

  /** Send a signal to the worker's process only if it is still the process we started. */
  private signal(record: WorkerRecord, signal: NodeJS.Signals, group = false): boolean {
    if (record.pid === undefined || record.processStartTime === undefined) return false;
    if (!isSameProcess(record.pid, record.processStartTime)) return false;
    try {
      process.kill(group ? -record.pid : record.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  private async stopProcesses(records: WorkerRecord[], graceMs: number, abort?: AbortSignal): Promise<void> {
    if (records.length === 0) return;
    for (const record of records) this.signal(record, "SIGTERM");
    await sleep(SECOND_SIGTERM_MS);
    for (const record of records) this.signal(record, "SIGTERM");
    const deadline = Date.now() + graceMs;
    const alive = () => records.filter((r) => isSameProcess(r.pid!, r.processStartTime!));
    while (alive().length > 0 && Date.now() < deadline && !abort?.aborted) await sleep(100);
    for (const record of alive()) this.signal(record, "SIGKILL", true);
  }

  private async forgetIfGone(record: WorkerRecord): Promise<void> {
    if (record.pid === undefined || !isSameProcess(record.pid, record.processStartTime!))
      await this.forget(record);
  }

  /** Drop the record and a PID file left behind by a worker that died without cleaning up. */
  private async forget(record: WorkerRecord): Promise<void> {
    this.unschedule(record.id);
    this.ends.delete(record.id);
    this.endEvents.delete(record.id);
    await this.records.remove(record.id);
    // The worker's own PID folder goes with it (a worker that died left its PID file behind).
    await rm(join(this.pidDir, record.id), { recursive: true, force: true });
  }
}

function describe(record: WorkerRecord, state: LocalWorkerState): LocalWorker {
  return {
    id: record.id,
    state,
    hiredAt: record.hiredAt,
    ...(record.pid !== undefined ? { pid: record.pid } : {}),
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** The factory's entry point. */
export function createLocalRegion(config: LocalRegionConfig, context: RegionContext): LocalRegion {
  return new LocalRegion(config, context);
}
