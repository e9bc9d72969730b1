import type { RegionConfig } from "../config/regions.js";
import type { RegionContext } from "./context.js";
import type { Region } from "./types.js";
import { createAzuremlRegion } from "./azureml/index.js";
import { createLocalRegion } from "./local/index.js";

/** One builder per kind of region: adding a kind never touches the controller. */
export function createRegion(config: RegionConfig, context: RegionContext): Region {
  switch (config.kind) {
    case "azureml":
      return createAzuremlRegion(config, context);
    case "local":
      return createLocalRegion(config, context);
    default: {
      const unknown = config as { name: string; kind: string };
      throw new Error(`region ${unknown.name}: kind "${unknown.kind}" is not available in this build`);
    }
  }
}
