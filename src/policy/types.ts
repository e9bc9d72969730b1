/** Inputs to a scaling policy: the whole workforce, summed over regions. */
export interface PolicyInput {
  /** Tasks waiting or in flight. */
  queueDepth: number;
  /** Tasks one worker runs at once (ai4s-jobq's --num-workers). */
  concurrency: number;
  /** Workers running now (not draining), over all regions. The ramp grows with these only. */
  running: number;
  /** Workers hired but not running yet, over all regions. */
  pending: number;
  /** Upper bound on workers (default 50000). */
  maxWorkers: number;
  /** Floor while the queue is non-empty (default 0). */
  minWorkers: number;
  /** Target may be at most rampFactor x (running + 1) (default 10). */
  rampFactor: number;
  /**
   * What the controller has learned from its observations (see estimate.ts); set by the daemon and the
   * simulator, absent in `workforce plan`. Policies that do not need it ignore it.
   */
  estimates?: PolicyEstimates;
}

export interface PolicyEstimates {
  /** Median time a task keeps a slot busy. */
  taskSeconds: number;
  /** Start-up of the next hire: hired to running. */
  startupSeconds: number;
}

/**
 * A policy maps the state of the world to the number of active workers wanted (running + pending).
 * Must be pure. A custom one is loaded by module path (WORKFORCE_POLICY_MODULE).
 */
export type PolicyFunction = (input: PolicyInput) => number;
