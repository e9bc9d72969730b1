/**
 * How long items stay in a stage (a hired worker in "pending", a task in a busy slot), learned from counts
 * alone: the daemon sees how many items are inside at each tick, never which ones. Items are matched first
 * in, first out (the cumulative-curve method of queueing theory: the mean delay is exact, single delays are
 * approximate), and the estimate is a Kaplan-Meier median, so that items still inside count as "at least
 * this old" instead of being ignored (ignoring them makes every cold start look fast: the first items out
 * are the quick ones). Pure: every function returns a new state.
 */

/** Items that entered together. */
export interface Cohort {
  at: number;
  count: number;
  /** Found already inside (a restarted daemon's first look): when they entered is not known. */
  unknown?: boolean;
}

/** Items that left after `seconds` inside. */
export interface Exit {
  seconds: number;
  count: number;
}

export interface FlowState {
  /** Items inside, oldest first. */
  inside: Cohort[];
  /** Recent exits, oldest first, at most `window` items in all. */
  exits: Exit[];
}

export interface FlowEstimate {
  seconds: number;
  /**
   * measured: the median of what was seen; at-least: nothing conclusive yet, but items have stayed this
   * long (it beat the hint); hint: no evidence beyond the hint.
   */
  source: "measured" | "at-least" | "hint";
  /** Exits the estimate rests on. */
  samples: number;
}

export interface EstimateOptions {
  /** Used until enough evidence exists. */
  hint: number;
  /** Exits needed before the median counts as measured (default 3). */
  minSamples?: number;
  /**
   * Exits needed before a median below the hint is believed (default: as many as are inside, i.e. a whole
   * wave): the first items out are the quick ones, so an early low median is biased low.
   */
  trustBelowHint?: number;
}

export const emptyFlow = (): FlowState => ({ inside: [], exits: [] });

const total = (cohorts: readonly { count: number }[]) => cohorts.reduce((sum, c) => sum + c.count, 0);

/** `count` items enter at `at`. */
export function enter(state: FlowState, at: number, count: number, unknown = false): FlowState {
  if (!(count > 0)) return state;
  const inside = state.inside.map((cohort) => ({ ...cohort }));
  const last = inside[inside.length - 1];
  if (last && last.at === at && Boolean(last.unknown) === unknown) last.count += count;
  else inside.push({ at, count, ...(unknown ? { unknown } : {}) });
  return { inside, exits: state.exits };
}

/** Take `count` items from the newest cohorts (cancelled pending workers: the least advanced go first). */
export function removeNewest(state: FlowState, count: number): FlowState {
  const inside = state.inside.map((cohort) => ({ ...cohort }));
  let left = Math.max(0, count);
  while (left > 0 && inside.length > 0) {
    const last = inside[inside.length - 1]!;
    const take = Math.min(left, last.count);
    last.count -= take;
    left -= take;
    if (last.count === 0) inside.pop();
  }
  return { inside, exits: state.exits };
}

/**
 * `count` items leave at `now`, oldest first. With `record`, each becomes an exit of `now - at - correction`
 * seconds (correction: half a tick when the exit is only seen at the next tick but the entry time is exact).
 */
export function leave(
  state: FlowState,
  now: number,
  count: number,
  options: { record: boolean; correction?: number; window: number },
): FlowState {
  const inside = state.inside.map((cohort) => ({ ...cohort }));
  const exits = [...state.exits];
  let left = Math.max(0, count);
  while (left > 0 && inside.length > 0) {
    const first = inside[0]!;
    const take = Math.min(left, first.count);
    if (options.record && !first.unknown) {
      exits.push({ seconds: Math.max(0, now - first.at - (options.correction ?? 0)), count: take });
    }
    first.count -= take;
    left -= take;
    if (first.count === 0) inside.shift();
  }
  // Keep only the newest `window` exits: a new batch may differ from the last one.
  let excess = total(exits) - options.window;
  while (excess > 0 && exits.length > 0) {
    const oldest = exits[0]!;
    const take = Math.min(excess, oldest.count);
    if (take === oldest.count) exits.shift();
    else exits[0] = { ...oldest, count: oldest.count - take };
    excess -= take;
  }
  return { inside, exits };
}

/**
 * Make the count inside agree with what is observed: missing items entered now (hired by someone else, or
 * appeared late; with `unknown`, found on a first look, so their exits teach nothing); extra items left unseen (oldest first, not recorded: their duration is not known).
 */
export function reconcile(
  state: FlowState,
  now: number,
  observedInside: number,
  window: number,
  unknown = false,
): FlowState {
  const inside = total(state.inside);
  if (observedInside > inside) return enter(state, now, observedInside - inside, unknown);
  if (observedInside < inside) return leave(state, now, inside - observedInside, { record: false, window });
  return state;
}

/**
 * The median time inside. Kaplan-Meier over exits (events) and items still inside (censored at their age).
 * Until the median is reached with `minSamples` exits, the answer is the hint, or more when a tenth of the
 * items (at least 3) have already stayed longer: one stuck item does not move it, a slow batch does.
 */
export function estimateFlow(state: FlowState, now: number, options: EstimateOptions): FlowEstimate {
  const minSamples = options.minSamples ?? 3;
  const trustBelowHint = options.trustBelowHint ?? total(state.inside);
  // Events and censored items per distinct time (times repeat: they are whole ticks apart).
  const byTime = new Map<number, { events: number; censored: number }>();
  let samples = 0;
  let population = 0;
  const add = (seconds: number, count: number, event: boolean) => {
    if (!(count > 0)) return;
    const entry = byTime.get(seconds) ?? { events: 0, censored: 0 };
    if (event) entry.events += count;
    else entry.censored += count;
    byTime.set(seconds, entry);
    population += count;
    if (event) samples += count;
  };
  for (const exit of state.exits) add(exit.seconds, exit.count, true);
  for (const cohort of state.inside) {
    if (!cohort.unknown) add(Math.max(0, now - cohort.at), cohort.count, false);
  }
  const times = [...byTime.keys()].sort((a, b) => a - b);
  const enoughAtRisk = Math.max(3, 0.1 * population);

  let atRisk = population;
  let survival = 1;
  let atLeast = 0;
  // At each time, events count before the items censored then, as Kaplan-Meier requires.
  for (const seconds of times) {
    const { events, censored } = byTime.get(seconds)!;
    if (atRisk >= enoughAtRisk) atLeast = seconds;
    if (events > 0) survival *= 1 - events / atRisk;
    if (survival <= 0.5 && samples >= minSamples) {
      if (seconds >= options.hint || samples >= trustBelowHint)
        return { seconds, source: "measured", samples };
      break;
    }
    atRisk -= events + censored;
  }
  return atLeast > options.hint
    ? { seconds: atLeast, source: "at-least", samples }
    : { seconds: options.hint, source: "hint", samples };
}
