import type { RegionConfig } from "../config/regions.js";
import type { RegionContext } from "./context.js";
import type { Region } from "./types.js";

/** One builder per kind of region: adding a kind never touches the controller. */
export function createRegion(config: RegionConfig, context: RegionContext): Region {
  switch (config.kind) {
    default:
      throw new Error(`region ${config.name}: kind "${config.kind}" is not available in this build`);
  }
}
