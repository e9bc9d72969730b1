import { constants } from "node:os";
import { z } from "zod";
import { PLACEHOLDERS, unknownPlaceholders } from "./command.js";
import { regionCommonShape } from "../common-config.js";
import { backChannelSchema } from "../../backchannel/config.js";

/** Workers are processes on this machine, started from an argv template (no shell). */
export const localRegionSchema = z
  .object({
    ...regionCommonShape,
    kind: z.literal("local"),
    /** How many workers this machine may run at once. */
    capacity: z.number().int().min(0),
    /**
     * argv of one worker. Placeholders: {queue}, {concurrency}, {workerId}, {node} (this Node binary),
     * {workforce} (this package's CLI entry).
     */
    command: z
      .array(z.string().min(1))
      .min(1)
      .superRefine((command, ctx) => {
        const unknown = unknownPlaceholders(command);
        if (unknown.length > 0) {
          ctx.addIssue({
            code: "custom",
            message: `unknown placeholder ${unknown.join(", ")} (expected ${PLACEHOLDERS.map((name) => `{${name}}`).join(", ")})`,
          });
        }
      }),
    /** Where PID files and worker state live; a restarted daemon finds its workers here. */
    stateDir: z.string().min(1),
    /** Signal that asks a running worker to finish its task and leave. */
    drainSignal: z
      .string()
      .refine((name) => name.startsWith("SIG") && name in constants.signals, "a signal name such as SIGINT")
      .default("SIGINT"),
    /** Extra environment for workers. */
    env: z.record(z.string(), z.string()).default({}),
    /** Simulated node start-up: a hired worker stays pending this long before its process starts. */
    startupDelaySeconds: z.number().min(0).default(0),
    /** After an explicit stop (lay-off of running workers, demo shutdown), SIGKILL what is still alive. */
    killGraceSeconds: z.number().min(0).default(10),
    /**
     * Drain through a Service Bus topic (workers wrapped by `workforce agent`) instead of signals; worker ids
     * are the names the channel tracks.
     */
    backChannel: backChannelSchema.optional(),
  })
  .strict();

export type LocalRegionConfig = z.output<typeof localRegionSchema>;
