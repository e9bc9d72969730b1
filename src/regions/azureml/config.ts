import { z } from "zod";
import { regionCommonShape } from "../common-config.js";

// PLACEHOLDER: the AzureML issue fills this in (subscription, workspace, experiment, compute, template...).
export const azuremlRegionSchema = z
  .object({
    ...regionCommonShape,
    kind: z.literal("azureml"),
  })
  .passthrough();

export type AzuremlRegionConfig = z.output<typeof azuremlRegionSchema>;
