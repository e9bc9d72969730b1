import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

/** One task of a trace: its run time, and when it is enqueued (seconds from the start). */
export interface Task {
  seconds: number;
  at: number;
}

export interface ClusterRegion {
  name: string;
  nodes: number;
  /** Start-up delay, drawn uniformly from [low, high]. */
  startupSeconds: [number, number];
  weight?: number;
}

export interface Cluster {
  concurrency: number;
  intervalSeconds: number;
  workersExitWhenQueueEmpty: boolean;
  regions: ClusterRegion[];
}

/** A trace or cluster file that does not say what the simulator needs; the message names the field. */
export class SimulationInputError extends Error {
  readonly code = "SimulationInputError";
  constructor(message: string) {
    super(message);
    this.name = "SimulationInputError";
  }
}

const taskSchema = z.object({
  seconds: z
    .number({ error: "expected a number of seconds > 0" })
    .positive({ error: "expected a number of seconds > 0" }),
  at: z
    .number({ error: "expected a number of seconds >= 0" })
    .min(0, { error: "expected a number of seconds >= 0" })
    .default(0),
});
const traceSchema = z.object({ tasks: z.array(taskSchema, { error: "expected a list of tasks" }) });

const startupSchema = z
  .union(
    [
      z
        .number()
        .min(0)
        .transform((value): [number, number] => [value, value]),
      z.tuple([z.number().min(0), z.number().min(0)]),
    ],
    {
      error: "expected seconds >= 0, or [low, high] seconds",
    },
  )
  .refine(([low, high]) => low <= high, { error: "expected [low, high] with low <= high" });

const clusterSchema = z.object({
  concurrency: z
    .number()
    .int({ error: "expected a whole number >= 1" })
    .min(1, { error: "expected a whole number >= 1" }),
  intervalSeconds: z.number().positive({ error: "expected a number of seconds > 0" }).default(60),
  workersExitWhenQueueEmpty: z.boolean({ error: "expected true or false" }).default(true),
  regions: z
    .array(
      z.object({
        name: z.string({ error: "expected a name" }).min(1, { error: "expected a name" }),
        nodes: z
          .number()
          .int({ error: "expected a whole number >= 0" })
          .min(0, { error: "expected a whole number >= 0" }),
        startupSeconds: startupSchema,
        weight: z.number().positive({ error: "expected a number > 0" }).optional(),
      }),
      { error: "expected a list of regions" },
    )
    .min(1, { error: "expected at least one region" })
    .refine((regions) => new Set(regions.map((region) => region.name)).size === regions.length, {
      error: "region names must be unique",
    }),
});

function describeIssues(file: string, error: z.ZodError): string {
  return error.issues
    .map((issue) => `${file}: ${issue.path.length ? issue.path.join(".") : "(top level)"}: ${issue.message}`)
    .join("\n");
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new SimulationInputError(`${file}: cannot read: ${(error as Error).message}`);
  }
}

/** A trace: JSON `{"tasks": [{"seconds": 600, "at": 0}, ...]}`, or CSV with a `seconds` column and optional `at`. */
export function parseTrace(text: string, file = "trace"): Task[] {
  if (extname(file).toLowerCase() === ".csv") return parseCsvTrace(text, file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SimulationInputError(`${file}: not JSON: ${(error as Error).message}`);
  }
  const parsed = traceSchema.safeParse(value);
  if (!parsed.success) throw new SimulationInputError(describeIssues(file, parsed.error));
  return parsed.data.tasks;
}

function parseCsvTrace(text: string, file: string): Task[] {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  const header = (lines[0] ?? "").split(",").map((cell) => cell.trim().toLowerCase());
  const secondsColumn = header.indexOf("seconds");
  const atColumn = header.indexOf("at");
  if (secondsColumn < 0)
    throw new SimulationInputError(`${file}: line 1: expected a header with a "seconds" column`);
  return lines.slice(1).map((line, index) => {
    const cells = line.split(",").map((cell) => cell.trim());
    const row = {
      seconds: Number(cells[secondsColumn]),
      ...(atColumn >= 0 && cells[atColumn] !== "" ? { at: Number(cells[atColumn]) } : {}),
    };
    const parsed = taskSchema.safeParse(row);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new SimulationInputError(`${file}: line ${index + 2}: ${issue.path.join(".")}: ${issue.message}`);
    }
    return parsed.data;
  });
}

/** A cluster: JSON or YAML (by extension `.yaml` / `.yml`). */
export function parseCluster(text: string, file = "cluster"): Cluster {
  let value: unknown;
  try {
    value = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (error) {
    throw new SimulationInputError(`${file}: cannot parse: ${(error as Error).message}`);
  }
  const parsed = clusterSchema.safeParse(value);
  if (!parsed.success) throw new SimulationInputError(describeIssues(file, parsed.error));
  return parsed.data;
}

export const readTrace = (file: string): Task[] => parseTrace(readText(file), file);
export const readCluster = (file: string): Cluster => parseCluster(readText(file), file);
