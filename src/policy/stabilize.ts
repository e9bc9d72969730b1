/** A target the policy asked for at a moment. */
export interface TargetSample {
  at: number;
  target: number;
}

export interface Stabilized {
  /** What the workforce may shrink to: the highest target of the window. */
  target: number;
  /** The window's samples, to pass to the next call. */
  history: TargetSample[];
}

/**
 * Scale-down stabilization, as Kubernetes' HPA does it: shrink only to the highest target seen in the
 * last `windowMs`; growing is immediate because the new target is part of the window. Pure: the caller
 * keeps the history.
 */
export function stabilizeTarget(
  history: readonly TargetSample[],
  now: number,
  desired: number,
  windowMs: number,
): Stabilized {
  const kept = history.filter((sample) => now - sample.at < windowMs);
  kept.push({ at: now, target: desired });
  return { target: Math.max(...kept.map((sample) => sample.target)), history: kept };
}
