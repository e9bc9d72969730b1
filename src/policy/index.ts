export type { PolicyInput, PolicyFunction } from "./types.js";
export { stepPolicy, proportionalPolicy, stepSize, rampLimit, applyLimits } from "./step.js";
export { stabilizeTarget, type TargetSample, type Stabilized } from "./stabilize.js";
export { spreadHires, type SpreadRegion } from "./spread.js";
export { planShrink, type ShrinkInput, type ShrinkPlan, type ShrinkRegion } from "./shrink.js";
export {
  decide,
  PolicyError,
  type Decision,
  type DecideInput,
  type DecideParameters,
  type Plan,
  type RegionPlan,
  type RegionView,
  type Totals,
} from "./decide.js";
