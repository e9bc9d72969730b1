import pLimit from "p-limit";
import type { CancelOptions, CancelOutcome, HireOptions, Region, ResumeResult } from "../regions/types.js";
import type { Plan, RegionPlan } from "../policy/decide.js";
import type { Logger } from "../logging/logger.js";
import type { RegionOperation } from "../metrics/registry.js";
import { withDeadline } from "./deadline.js";
import { describeError } from "./snapshot.js";
import { classifyFailure } from "./failures.js";
import type { ScaleUpFailureReason } from "../metrics/registry.js";
import type { WriteFence } from "../regions/fence.js";

export interface RegionOutcome {
  region: string;
  /** Workers the service accepted. */
  hired: number;
  /** Submissions with an unknown outcome (timed out, cut off): they may exist and count as in flight. */
  hireUnknown: number;
  cancelled: number;
  /** Cancels with an unknown outcome (sent, then cut off or timed out): the job may be cancelling. */
  cancelUnknown: number;
  drained: number;
  /** The sweep over paused workers, in regions that have one (AzureML). */
  resume?: Omit<ResumeResult, "errors">;
  /** Drain requests that may have gone out (the send was cut off): they count as sent. */
  drainUnknown: number;
  errors: Array<{
    operation: RegionOperation;
    message: string;
    reason: ScaleUpFailureReason;
    /** It will not heal by itself: someone must fix the configuration. */
    permanent: boolean;
  }>;
}

function failure(operation: RegionOperation, error: unknown): RegionOutcome["errors"][number] {
  const kind = classifyFailure(error);
  const detail = [kind.network, kind.hint].filter(Boolean).join("; ");
  return {
    operation,
    message: `${describeError(error)}${detail ? ` (${detail})` : ""}`,
    reason: kind.reason,
    permanent: kind.permanent,
  };
}

/** What a region call answered: the counts of whichever operation it was. */
export interface CallResult {
  errors: Error[];
  hired?: number;
  cancelled?: number;
  drained?: number;
  unknown?: number;
}

export interface ActOptions {
  /** Deadline of one region's whole action (hires of many workers take a while). */
  actTimeoutMs: number;
  concurrency: number;
  dryRun: boolean;
  logger: Logger;
  signal?: AbortSignal;
  /**
   * Checked before each step (cancel, drain, hire) of each region; the regions check it again before
   * every single write. Once it refuses, the region's remaining steps are skipped.
   */
  fence?: WriteFence;
  /** Options the controller adds to a region's hire (to count submissions in flight). */
  hireOptions?: (region: string) => Pick<HireOptions, "onSubmit" | "onOutcome">;
  /** A call abandoned at its deadline answered later: what it did after all. */
  onLate?: (region: string, operation: RegionOperation, result: CallResult) => void;
}

function emptyOutcome(region: string): RegionOutcome {
  return {
    region,
    hired: 0,
    hireUnknown: 0,
    cancelled: 0,
    cancelUnknown: 0,
    drained: 0,
    drainUnknown: 0,
    errors: [],
  };
}

/**
 * Carry out a plan, region by region and independently: one region's failure or slowness does not touch
 * the others. Within a region: cancel pending workers first, then drain, then hire, then resume paused
 * workers (as upstream, at the end of the tick: a paused worker cancelled as surplus is not resumed). The
 * resume runs in a held tick too: it is neither growth nor shrink, and a held tick may last a while.
 */
export async function carryOut(
  plan: Plan,
  regions: readonly Region[],
  options: ActOptions,
): Promise<RegionOutcome[]> {
  const byName = new Map(regions.map((region) => [region.name, region]));
  const limit = pLimit(options.concurrency);
  return Promise.all(
    plan.regions.map((regionPlan) =>
      limit(async () => {
        const region = byName.get(regionPlan.region);
        if (!region || options.dryRun) return emptyOutcome(regionPlan.region);
        const outcome = plan.hold
          ? emptyOutcome(region.name)
          : await actOnRegion(region, regionPlan, options);
        if (region.resumePaused) await resumeIn(region, outcome, options);
        return outcome;
      }),
    ),
  );
}

async function actOnRegion(region: Region, plan: RegionPlan, options: ActOptions): Promise<RegionOutcome> {
  const outcome = emptyOutcome(region.name);
  const log = options.logger.child({ region: region.name });
  let fenced = false;
  const step = async (
    operation: RegionOperation,
    count: number,
    call: (signal: AbortSignal) => Promise<CallResult>,
    field: "hired" | "cancelled" | "drained",
  ) => {
    if (count <= 0 || fenced) return;
    try {
      options.fence?.check(`region ${region.name} ${operation}`);
    } catch (error) {
      fenced = true;
      outcome.errors.push(failure(operation, error));
      log.warn({ operation, requested: count, err: error }, `${operation} not started: fenced`);
      return;
    }
    let running: Promise<CallResult> | undefined;
    try {
      const result = await withDeadline(
        `region ${region.name} ${operation}`,
        options.actTimeoutMs,
        (signal) => (running = call(signal)),
        options.signal,
      );
      const done = Number(result[field] ?? 0);
      outcome[field] = Number.isFinite(done) ? done : 0;
      const unknown = Number(result.unknown ?? 0);
      if (operation === "hire") outcome.hireUnknown = Number.isFinite(unknown) ? unknown : 0;
      if (operation === "drain") outcome.drainUnknown = Number.isFinite(unknown) ? unknown : 0;
      for (const error of result.errors ?? []) outcome.errors.push(failure(operation, error));
      if (outcome[field] < count || (result.errors?.length ?? 0) > 0) {
        log.warn(
          { operation, requested: count, done: outcome[field], errors: result.errors?.map(describeError) },
          `${operation} partly done`,
        );
      }
    } catch (error) {
      outcome.errors.push(failure(operation, error));
      log.error({ operation, requested: count, err: error }, `${operation} failed`);
      // What the region confirmed before the cut-off counts now; only what comes after counts as late.
      const counted = operation === "cancel" ? cancels.cutOff(outcome) : 0;
      // A drain cut off before the region answered may have asked every worker it was told to: they count
      // as maybe sent (draining, not running), as a send cut off inside the region does.
      if (operation === "drain") outcome.drainUnknown = count;
      // Abandoned, not undone: what the call still does counts when it answers.
      running
        ?.then((late) =>
          options.onLate?.(region.name, operation, {
            ...late,
            ...(late.cancelled !== undefined ? { cancelled: Math.max(0, late.cancelled - counted) } : {}),
          }),
        )
        .catch(() => undefined);
    }
  };
  const cancels = cancelTally();
  await step(
    "cancel",
    plan.cancel,
    (signal) => region.cancelPending(plan.cancel, { signal, ...cancels.options }),
    "cancelled",
  );
  outcome.cancelUnknown = Math.max(outcome.cancelUnknown, cancels.unknown());
  await step("drain", plan.drain, (signal) => region.drain(plan.drain, { signal }), "drained");
  const hireOptions = options.hireOptions?.(region.name) ?? {};
  await step("hire", plan.hire, (signal) => region.hire(plan.hire, { signal, ...hireOptions }), "hired");
  return outcome;
}

/**
 * Counts each cancel as it is sent and answered, so that a batch cut off by the act deadline reports the
 * cancels that went through (confirmed) and the ones sent but not answered (unknown), as hires do.
 */
function cancelTally() {
  const outcomes = new Map<string, CancelOutcome | undefined>();
  let frozen: number | undefined;
  const count = (wanted: (outcome: CancelOutcome | undefined) => boolean) =>
    [...outcomes.values()].filter(wanted).length;
  return {
    options: {
      onSubmit: (name: string) => outcomes.set(name, undefined),
      onOutcome: (name: string, outcome: CancelOutcome) => {
        if (frozen === undefined) outcomes.set(name, outcome);
      },
    } satisfies Pick<CancelOptions, "onSubmit" | "onOutcome">,
    /** Sent and never answered, or answered with an unknown outcome. */
    unknown: () => count((outcome) => outcome === undefined || outcome === "unknown"),
    /** At the deadline: what was confirmed so far is the outcome; returns how many that is. */
    cutOff(outcome: RegionOutcome): number {
      frozen = count((o) => o === "cancelled");
      outcome.cancelled = frozen;
      outcome.cancelUnknown = count((o) => o === undefined || o === "unknown");
      return frozen;
    },
  };
}

async function resumeIn(region: Region, outcome: RegionOutcome, options: ActOptions): Promise<void> {
  // No fence check here: the sweep's first step is a read (which paused workers there are), and the region
  // checks the lease right before each POST, counting what it did not send as `fenced`. A check here would
  // report a fenced resume for every region, paused workers or not.
  try {
    const result = await withDeadline(
      `region ${region.name} resume`,
      options.actTimeoutMs,
      (signal) => region.resumePaused!({ signal }),
      options.signal,
    );
    const { resumed, cancelled, refused, failed, backedOff, fenced } = result;
    outcome.resume = {
      resumed,
      cancelled,
      refused,
      failed,
      ...(backedOff ? { backedOff } : {}),
      ...(fenced ? { fenced } : {}),
    };
    for (const error of result.errors) outcome.errors.push(failure("resume", error));
  } catch (error) {
    outcome.errors.push(failure("resume", error));
    options.logger.child({ region: region.name }).error({ operation: "resume", err: error }, "resume failed");
  }
}
