import {
  currentEstimates,
  emptyEstimator,
  observeTick,
  recordActions,
  type Estimates,
  type EstimatorState,
  type Hints,
  type RegionActions,
  type TickObservation,
} from "../policy/estimate.js";

/**
 * The controller's memory of the workload, fed tick by tick with what it observed and what it did (the
 * daemon and the simulator feed it alike). Like the stabilization window it is a damper, not a source of
 * truth: a new process starts cold, on the hints.
 */
export class WorkloadLearner {
  private state: EstimatorState = emptyEstimator();

  constructor(private readonly hints: Hints) {}

  observe(tick: TickObservation): void {
    this.state = observeTick(this.state, tick);
  }

  acted(at: number, actions: readonly RegionActions[]): void {
    this.state = recordActions(this.state, at, actions);
  }

  estimates(now: number, room: Readonly<Record<string, number>> = {}): Estimates {
    return currentEstimates(this.state, now, this.hints, room);
  }
}
