import { z } from "zod";
import { regionCommonShape } from "../common-config.js";
import { backChannelSchema } from "../../backchannel/config.js";
import { ENVIRONMENT_NAME } from "./template.js";
import { credentialConfigSchema, PUBLIC_ARM_ENDPOINT } from "../../azure/credentials.js";
import { PUBLIC_ML_ENDPOINT } from "./ml-api.js";

const armName = (what: string) =>
  z
    .string()
    .min(1)
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_.()-]*$/,
      `an Azure ${what} name (letters, digits, '_', '.', '-', '(', ')')`,
    );

/**
 * One AzureML region: a workspace, a compute cluster and an experiment. Every active job of the
 * experiment that carries the workforce's tag key counts as one of its workers.
 */
export const azuremlRegionSchema = z
  .object({
    ...regionCommonShape,
    kind: z.literal("azureml"),
    subscriptionId: z
      .string()
      .regex(
        /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
        "a subscription id (GUID)",
      ),
    resourceGroup: armName("resource group"),
    workspace: armName("workspace"),
    /** Also the prefix of job names: `{experiment}-{8 chars}`. Each region needs its own. */
    experiment: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, "an experiment name (letters, digits, '_', '-')"),
    /** The compute cluster: a bare name, `azureml:NAME`, or its full ARM id. */
    compute: z.string().min(1),
    /**
     * The job template: a path to a YAML/JSON file, or the template inline. Either an AzureML CLI v2
     * command job (what `az ml job create --file` takes) or ARM JSON (`{"properties": {"jobType": "Command", ...}}`).
     */
    template: z.union([z.string().min(1), z.record(z.string(), z.unknown())]),
    /** ARM endpoint (sovereign clouds, the emulator). */
    armEndpoint: z.url({ protocol: /^https$/, error: "an https:// URL" }).default(PUBLIC_ARM_ENDPOINT),
    /** This region's own Azure identity; default: the daemon's (DefaultAzureCredential). */
    credential: credentialConfigSchema.optional(),
    /** Service Bus topic that running workers listen on, for graceful drain. */
    backChannel: backChannelSchema.optional(),
    /** Tag key that marks this workforce's jobs; the job list is filtered by it (default `workforce.{experiment}`). */
    tagKey: z
      .string()
      .min(1)
      .max(512)
      .regex(/^[^<>%&\\?/]+$/, "a tag key without < > % & \\ ? /")
      .optional(),
    /**
     * What to do with our own finished jobs so that listing stays as cheap as the active ones:
     * `archive` (hidden from the default Studio list), `untag` (renames our tag key to `{tagKey}.done`),
     * or `keep` (listing then grows with every finished job).
     */
    retireFinished: z.enum(["archive", "untag", "keep"]).default("archive"),
    /** Finished jobs retired per tick at most (ARM writes are rationed: about 10/s per principal). */
    retireBatch: z.number().int().min(0).default(100),
    /** Submits (and cancels) in flight at once in this region. */
    submitConcurrency: z.number().int().min(1).max(64).default(8),
    /** Deadline of one HTTP attempt; a hanging call is abandoned and retried. */
    requestTimeoutSeconds: z.number().positive().default(20),
    /** Retries of a failed ARM call (429, 5xx, network errors, timeouts). */
    retries: z.number().int().min(0).max(10).default(3),
    /** Name of the environment created for a template with an inline image (default `{experiment}-image`). */
    environmentName: z
      .string()
      .regex(
        ENVIRONMENT_NAME,
        "an environment name (letters, digits, '-', '_'; at most 255; the service's pattern)",
      )
      .optional(),
    /**
     * How the region lists its jobs: `arm` (the documented, versioned ARM jobs list; the default) or
     * `index` (the AzureML index API on ml.azure.com, filtered by status on the server, what upstream
     * ai4s-jobq runs in production; undocumented, not part of ARM: experimental).
     */
    listing: z.enum(["arm", "index"]).default("arm"),
    /** Resume workers a preemption paused, every tick, through the AzureML execution API on ml.azure.com. */
    resumePaused: z.boolean().default(true),
    /** Paused workers resumed per tick at most (each resume is one write from the subscription's budget). */
    resumeBatch: z.number().int().min(0).default(100),
    /** Base URL of the AzureML front end (resume, `listing: index`); the emulator in tests. */
    mlEndpoint: z.url({ protocol: /^https$/, error: "an https:// URL" }).default(PUBLIC_ML_ENDPOINT),
    /** The workspace's Azure region (e.g. `eastus`) for ml.azure.com paths; default: read once from ARM. */
    location: z
      .string()
      .regex(/^[a-z0-9]+$/, "an Azure region name in lower case, e.g. eastus")
      .optional(),
    /** Stop listing after this many pages (a guard against a runaway workspace; 100 jobs a page). */
    maxListPages: z.number().int().min(1).default(500),
  })
  .strict();

export type AzuremlRegionConfig = z.output<typeof azuremlRegionSchema>;
export type AzuremlRegionInput = z.input<typeof azuremlRegionSchema>;
