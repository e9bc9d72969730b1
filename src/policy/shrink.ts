/** A region as the shrink plan sees it. */
export interface ShrinkRegion {
  name: string;
  running: number;
  pending: number;
  /** Regions whose state is stale or unknown are not acted on. */
  actionable?: boolean;
  /** False for a region that cannot ask running workers to leave: nothing is drained there. */
  drainable?: boolean;
}

export interface ShrinkInput {
  /** Active workers wanted (after scale-down stabilization). */
  target: number;
  /** Tasks waiting or in flight. */
  queueDepth: number;
  concurrency: number;
  regions: readonly ShrinkRegion[];
}

export interface ShrinkPlan {
  cancel: Record<string, number>;
  drain: Record<string, number>;
  /** Running workers beyond what the target and the queue can use. */
  surplus: number;
  /** Workers the queue can keep busy: ceil(depth / concurrency). */
  busyWorkers: number;
}

/**
 * Take `count` from the regions, always from the one with the most left: evens out the regions. Ties go
 * round-robin in listed order. Whole levels are taken at once, so a count of billions costs a few steps.
 */
function takeFromLargest(count: number, available: Map<string, number>): Record<string, number> {
  const taken: Record<string, number> = {};
  let left = count;
  while (left > 0) {
    const top = Math.max(0, ...available.values());
    if (top === 0) break;
    const tied = [...available.keys()].filter((name) => available.get(name) === top);
    const below = Math.max(0, ...[...available.values()].filter((amount) => amount < top));
    // As many full rounds over the tied regions as fit before they reach the next level...
    const rounds = Math.min(Math.floor(left / tied.length), top - below);
    // ...or, when fewer are left than regions tied, one each to the first of them.
    const chosen = rounds > 0 ? tied : tied.slice(0, left);
    const each = Math.max(rounds, 1);
    for (const name of chosen) {
      available.set(name, top - each);
      taken[name] = (taken[name] ?? 0) + each;
      left -= each;
    }
  }
  return taken;
}

/**
 * Two rules. (1) Pending workers above the target are cancelled, regions with most pending first: they
 * hold no task. (2) A running worker is drained only when it is surplus:
 * surplus = runningNotDraining - max(target, ceil(depth / concurrency)). Never drain a worker the queue
 * can still keep busy: draining down to a step target while work waits stretches the run (in a simulation
 * of 10,000 ten-minute tasks, 82 -> 207 minutes).
 */
export function planShrink(input: ShrinkInput): ShrinkPlan {
  const running = input.regions.reduce((sum, region) => sum + region.running, 0);
  const pending = input.regions.reduce((sum, region) => sum + region.pending, 0);
  const target = Math.max(0, input.target);

  const excessActive = Math.max(0, running + pending - target);
  const toCancel = Math.min(pending, excessActive);
  const pendingByRegion = new Map(
    input.regions
      .filter((region) => region.actionable !== false)
      .map((region) => [region.name, region.pending]),
  );
  const cancel = takeFromLargest(toCancel, pendingByRegion);

  const busyWorkers = Math.max(0, Math.ceil(input.queueDepth / input.concurrency));
  const surplus = Math.max(0, running - Math.max(target, busyWorkers));
  const runningByRegion = new Map(
    input.regions
      .filter((region) => region.actionable !== false && region.drainable !== false)
      .map((region) => [region.name, region.running]),
  );
  const drain = takeFromLargest(surplus, runningByRegion);

  return { cancel, drain, surplus, busyWorkers };
}
