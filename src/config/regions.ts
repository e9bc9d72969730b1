import { z } from "zod";
import { localRegionSchema } from "../regions/local/config.js";
import { azuremlRegionSchema } from "../regions/azureml/config.js";

export const regionConfigSchema = z.discriminatedUnion("kind", [localRegionSchema, azuremlRegionSchema]);
export type RegionConfig = z.output<typeof regionConfigSchema>;

export const regionListSchema = z
  .array(regionConfigSchema)
  .min(1, "at least one region")
  .superRefine((regions, ctx) => {
    const seen = new Set<string>();
    regions.forEach((region, index) => {
      if (seen.has(region.name)) {
        ctx.addIssue({
          code: "custom",
          path: [index, "name"],
          message: `duplicate region name "${region.name}": names must be unique`,
        });
      }
      seen.add(region.name);
    });
  });
