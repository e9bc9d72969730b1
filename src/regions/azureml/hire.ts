import type { LimitFunction } from "p-limit";
import type { Logger } from "../../logging/logger.js";
import { redactText } from "../../logging/logger.js";
import { statusOf } from "../../azure/retry.js";
import type { HireOptions, HireResult } from "../types.js";
import { isJobPropertyImmutable, mayHaveCommitted, type ArmWorkspace } from "./arm.js";
import { pushError, regionError } from "./errors.js";
import { newJobName, workspaceId, type WorkspaceRef } from "./names.js";
import { isFenced } from "../fence.js";
import { buildJobBody, type JobContext, type JobTemplate } from "./template.js";

/**
 * Hiring: one PUT of a new job per worker, the body built from the template as written (raw JSON: an ARM
 * template's inputs and outputs go as given), under the region's submit concurrency and the
 * subscription's write budget.
 */
export interface HireContext {
  arm: ArmWorkspace;
  writes: LimitFunction;
  template: JobTemplate;
  experiment: string;
  region: string;
  logger: Logger;
}

/** Names tried per worker: a clash with a job we did not create gets a fresh name, a few times at most. */
const NAME_TRIES = 3;

/**
 * Submit one worker; resolves once it exists (created by this call or by its own retried request). The
 * caller is told each name before it goes out and what became of it; a failure whose job may exist anyway
 * (timed out, cut off, reset, 5xx) is `unknown`, not refused, and says so (`error.unknown`).
 */
async function submitOne(ctx: HireContext, job: JobContext, options: HireOptions): Promise<void> {
  const { signal, onSubmit, onOutcome } = options;
  for (let tryNo = 1; ; tryNo++) {
    const name = newJobName(ctx.experiment);
    let attempts = 0;
    const retried: unknown[] = [];
    onSubmit?.(name);
    try {
      await ctx.arm.putJob(name, buildJobBody(ctx.template, job), {
        ...(signal ? { signal } : {}),
        onAttempt: () => attempts++,
        onRetry: (error) => retried.push(error),
      });
      onOutcome?.(name, "accepted");
      return;
    } catch (error) {
      if (!isJobPropertyImmutable(error)) {
        // The failures of the requests that went out: the retried ones, and the last one if it was sent.
        const failures = attempts > retried.length ? [...retried, error] : retried;
        const unknown = failures.some(mayHaveCommitted);
        onOutcome?.(name, unknown ? "unknown" : "refused");
        throw Object.assign(regionError(ctx.region, `submit job ${name}`, error), { unknown });
      }
      if (attempts > 1) {
        // Our fresh name already exists after a retry: an earlier attempt created it. Success, counted once.
        ctx.logger.debug({ job: name }, "job already created by a retried request; counted as hired");
        onOutcome?.(name, "accepted");
        return;
      }
      // On the first request: the name belongs to a job we never submitted. Not ours; try another name.
      onOutcome?.(name, "refused");
      if (tryNo >= NAME_TRIES) throw regionError(ctx.region, `submit job ${name}`, error);
      ctx.logger.warn(
        { job: name },
        `region ${ctx.region}: job name ${name} is taken by another job; trying a new name`,
      );
    }
  }
}

export async function hireWorkers(
  ctx: HireContext,
  job: JobContext,
  count: number,
  options: HireOptions = {},
): Promise<HireResult> {
  const { signal, onProgress } = options;
  const errors: Error[] = [];
  let hired = 0;
  let failed = 0;
  /** Failed with an unknown outcome: the job may exist (counted apart from `hired`). */
  let unknown = 0;
  /** Not tried: the caller's deadline came first (the next tick sees the gap and hires again). */
  let skipped = 0;
  /** A refusal every other submit would get too (401, 403, a 400 on the template): stop sending. */
  let refusal: number | undefined;
  let refused = 0;
  /** This replica lost its leader lease (by its own clock): not one more submit. */
  let fenced: Error | undefined;
  let notSent = 0;
  let lastLog = Date.now();
  await Promise.all(
    Array.from({ length: count }, () =>
      ctx.writes(async () => {
        if (signal?.aborted) {
          skipped++;
          return;
        }
        if (refusal !== undefined) {
          refused++;
          return;
        }
        if (fenced) {
          notSent++;
          return;
        }
        try {
          await submitOne(ctx, job, options);
          hired++;
        } catch (error) {
          if (isFenced(error)) {
            fenced ??= error as Error;
            notSent++;
            return;
          }
          failed++;
          if ((error as { unknown?: boolean }).unknown) unknown++;
          pushError(errors, error as Error);
          const status = statusOf((error as Error).cause ?? error);
          if (status !== undefined && status >= 400 && status < 500 && ![408, 409, 429].includes(status))
            refusal = status;
        }
        onProgress?.({ done: hired, failed, total: count });
        if (count >= 50 && Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          ctx.logger.info({ hired, failed, total: count }, "hiring in progress");
        }
      }),
    ),
  );
  if (skipped > 0) {
    const reason = signal?.reason instanceof Error ? signal.reason.message : String(signal?.reason);
    errors.push(
      new Error(
        `region ${ctx.region}: hire stopped by the caller's deadline (${redactText(reason)}): ${skipped} of ${count} workers not submitted`,
      ),
    );
  }
  if (refused > 0) {
    errors.push(
      new Error(
        `region ${ctx.region}: hire stopped after an HTTP ${refusal} refusal that every submit would get: ${refused} of ${count} workers not submitted`,
      ),
    );
  }
  if (fenced) {
    errors.push(
      new Error(
        `region ${ctx.region}: hire stopped: ${fenced.message}: ${notSent} of ${count} workers not submitted`,
      ),
    );
  }
  ctx.logger.info(
    { hired, failed, unknown, skipped, refused, fenced: notSent, requested: count },
    "hire done",
  );
  return { hired, ...(unknown > 0 ? { unknown } : {}), errors };
}

/**
 * The id of the environment the template's jobs use: a registered one as named, or the inline image's
 * version, created once (a PUT of the same name, version and image is idempotent) and retried on the next
 * hire when it failed.
 */
export function environmentOf(
  template: JobTemplate,
  ref: WorkspaceRef,
  arm: ArmWorkspace,
): (signal?: AbortSignal) => Promise<string | undefined> {
  let environmentId: Promise<string> | undefined;
  return async (signal) => {
    if (template.environmentRef) {
      return `${workspaceId(ref)}/environments/${template.environmentRef.name}/versions/${template.environmentRef.version}`;
    }
    const image = template.inlineImage;
    if (!image) return undefined;
    environmentId ??= arm
      .putEnvironmentVersion(image.name, image.version, image.image, image.description, signal)
      .then((id) => id || `${workspaceId(ref)}/environments/${image.name}/versions/${image.version}`);
    try {
      return await environmentId;
    } catch (error) {
      environmentId = undefined;
      throw error;
    }
  };
}
