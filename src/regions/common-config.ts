import { z } from "zod";

/** Fields every region kind has. */
export const regionCommonShape = {
  name: z
    .string()
    .min(1)
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "letters, digits, '.', '_' or '-' (used as a metric label)"),
  /** Relative share when spreading hires over regions. */
  weight: z.number().positive().default(1),
  /** Ceiling on this region's active workers. */
  maxWorkers: z.number().int().min(0).optional(),
};
