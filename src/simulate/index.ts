export { simulate, type SimulationOptions, type SimulationResult, type SimulatedTick } from "./run.js";
export {
  parseTrace,
  parseCluster,
  readTrace,
  readCluster,
  SimulationInputError,
  type Task,
  type Cluster,
  type ClusterRegion,
} from "./input.js";
export { renderChart, type ChartRun } from "./chart.js";
export { formatTable, summary, type NamedResult } from "./report.js";
export { REFERENCE_CLUSTER, REFERENCE_TRACES, uniformTrace, logNormalTrace } from "./reference.js";
