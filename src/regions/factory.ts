import type { RegionConfig } from "../config/regions.js";
import type { RegionContext } from "./context.js";
import type { Region } from "./types.js";
import { createAzuremlRegion } from "./azureml/index.js";

/** One builder per kind of region: adding a kind never touches the controller. */
export function createRegion(config: RegionConfig, context: RegionContext): Region {
  switch (config.kind) {
    case "azureml":
      return createAzuremlRegion(config, context);
    default:
      throw new Error(`region ${config.name}: kind "${config.kind}" is not available in this build`);
  }
}
