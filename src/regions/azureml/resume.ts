import type { LimitFunction } from "p-limit";
import type { Logger } from "../../logging/logger.js";
import { redactText } from "../../logging/logger.js";
import type { ResumeResult } from "../types.js";
import { BackoffError } from "../../azure/backoff.js";
import { isFenced } from "../fence.js";
import { MlApiRefusal, type MlApi } from "./ml-api.js";

/**
 * Resuming Paused workers, as upstream ai4s-jobq does at the end of every tick (workforce.py
 * `_resume_one` at adafbf1): a preempted job (Singularity) stays Paused, holding its place in the
 * workforce but doing no work, until someone resumes it. ARM has no resume; the AzureML execution API on
 * ml.azure.com does. A job refused because it "exceeded max job execution time" can never run again: it
 * is cancelled instead, which frees its slot for a new worker.
 *
 * Throttling (a 429, or a 5xx with Retry-After: upstream retries those) is remembered as the region's
 * `resume` back-off: a sweep under it sends nothing, and one that meets it stops there; the workers not
 * tried are counted as `backedOff` (not failed) and wait for a sweep after the back-off.
 *
 * Resumes (and the cancels of expired workers) are writes behind the leader lease: the fence is checked
 * before each request (ml-api.ts, arm.ts). The first write it refuses stops the sweep; that worker and
 * the ones not tried are counted as `fenced` (not failed), and one error says why.
 */

/** The text of the execution API's refusal for a job past its limit (upstream matches the same words). */
export const EXPIRED_TEXT = "exceeded max job execution time";

export interface PausedJob {
  name: string;
  createdAt: number;
}

export interface ResumeDeps {
  api: MlApi;
  region: string;
  experiment: string;
  /** Resumed per sweep at most. */
  batch: number;
  /** The region's write slots (`submitConcurrency`), shared with submits and cancels. */
  slots: LimitFunction;
  /** Cancel a job through ARM (the region's cancel path). */
  cancel: (name: string, signal?: AbortSignal) => Promise<void>;
  logger: Logger;
  signal?: AbortSignal;
}

/** Oldest first (first paused, most likely to hit its limit), at most `batch`. */
export function resumeOrder(paused: readonly PausedJob[], batch: number): PausedJob[] {
  return [...paused]
    .filter((job) => job.name)
    .sort((a, b) => a.createdAt - b.createdAt || (a.name < b.name ? -1 : 1))
    .slice(0, batch);
}

function describe(error: unknown): string {
  return redactText(error instanceof Error ? error.message : String(error));
}

export async function resumePaused(paused: readonly PausedJob[], deps: ResumeDeps): Promise<ResumeResult> {
  const { api, region, logger: log, signal } = deps;
  const result: ResumeResult = { resumed: 0, cancelled: 0, refused: 0, failed: 0, errors: [] };
  const chosen = resumeOrder(paused, deps.batch);
  if (chosen.length === 0) return result;
  const held = api.backedOff("resume");
  if (held) {
    log.info(
      { paused: paused.length, until: new Date(held.until).toISOString(), reason: held.reason },
      `region ${region}: resumes in back-off (${held.reason}): ${chosen.length} paused workers not tried`,
    );
    return { ...result, backedOff: chosen.length };
  }
  let skipped = 0;
  let backedOff = 0;
  /** The back-off met during the sweep (the service throttled one resume: the others wait too). */
  let throttled: BackoffError | undefined;
  /** A 401 / 403: every other resume would get it too. */
  let stop: string | undefined;
  /** This replica lost its leader lease (by its own clock): not one more resume or cancel. */
  let fenced: Error | undefined;
  let notSent = 0;
  const fence = (error: unknown): boolean => {
    if (!isFenced(error)) return false;
    fenced ??= error as Error;
    notSent++;
    return true;
  };
  const fail = (message: string) => {
    result.failed++;
    if (result.errors.length < 5 && !result.errors.some((e) => e.message === message))
      result.errors.push(new Error(message));
  };
  await Promise.all(
    chosen.map((job) =>
      deps.slots(async () => {
        if (fenced) {
          notSent++;
          return;
        }
        if (throttled) {
          backedOff++;
          return;
        }
        if (signal?.aborted || stop !== undefined) {
          skipped++;
          return;
        }
        try {
          await api.resume(deps.experiment, job.name, signal);
          result.resumed++;
          log.debug({ job: job.name }, "resumed a paused worker");
        } catch (error) {
          if (fence(error)) return;
          if (error instanceof BackoffError) {
            // Throttled, or not sent for the back-off: not resumed, and not a failure.
            throttled ??= error;
            backedOff++;
            return;
          }
          if (!(error instanceof MlApiRefusal)) {
            const text = describe(error);
            fail(
              `region ${region}: ${text.startsWith(`resume ${job.name}:`) ? text : `resume ${job.name}: ${text}`}`,
            );
            return;
          }
          if (error.body.toLowerCase().includes(EXPIRED_TEXT)) {
            try {
              await deps.cancel(job.name, signal);
              result.cancelled++;
              log.warn(
                { job: job.name },
                `region ${region}: worker ${job.name} cannot be resumed (it exceeded max job execution time); cancelled instead`,
              );
            } catch (cancelError) {
              if (fence(cancelError)) return;
              fail(
                `region ${region}: cancel ${job.name} (past its max execution time, not resumable): ${describe(cancelError)}`,
              );
            }
            return;
          }
          if (error.statusCode === 401 || error.statusCode === 403) {
            stop = `HTTP ${error.statusCode}`;
            fail(
              `region ${region}: ${error.message} (the identity needs a token for https://ml.azure.com and a role allowing jobs/write on the workspace)`,
            );
            return;
          }
          result.refused++;
          log.warn(
            { job: job.name, status: error.statusCode },
            `region ${region}: ${error.message}; skipped`,
          );
        }
      }),
    ),
  );
  if (skipped > 0) {
    const why =
      stop !== undefined
        ? `an ${stop} refusal that every resume would get`
        : `the caller's deadline (${describe(signal?.reason)})`;
    result.failed += skipped;
    result.errors.push(
      new Error(
        `region ${region}: resume stopped by ${why}: ${skipped} of ${chosen.length} paused workers not tried`,
      ),
    );
  }
  if (backedOff > 0) {
    result.backedOff = backedOff;
    log.warn(
      { backedOff, until: new Date(throttled!.until).toISOString() },
      `region ${region}: ${throttled!.message}: ${backedOff} of ${chosen.length} paused workers not resumed this sweep`,
    );
  }
  if (fenced) {
    result.fenced = notSent;
    const message = `region ${region}: resume stopped: ${fenced.message}: ${notSent} of ${chosen.length} paused workers not resumed`;
    result.errors.push(new Error(message));
    log.warn({ fenced: notSent }, message);
  }
  const { resumed, cancelled, refused, failed } = result;
  log.info(
    { resumed, cancelled, refused, failed, backedOff, fenced: notSent, paused: paused.length },
    "resume of paused workers done",
  );
  return result;
}
