import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { JobPageReader } from "../src/regions/azureml/job-page.js";
import { SUBSCRIPTION, RESOURCE_GROUP } from "../test/emulators/azureml/fixtures.js";
import { loadTestTls } from "../test/emulators/tls/index.js";

/**
 * What a 50,000-job tick cannot cost less than on this machine, measured beside it (the AzureML bench's
 * "where it goes" lines): receiving the same pages with node:https alone, from the emulator and from a
 * server that does no work per request, and reading a page with the region's own reader, alone.
 */

const get = (agent: https.Agent, url: string) =>
  new Promise<string | undefined>((resolve, reject) => {
    https
      .get(
        url,
        { agent, headers: { authorization: "Bearer emulator", accept: "application/json" } },
        (res) => {
          let last: Buffer | undefined;
          res.on("data", (chunk: Buffer) => (last = chunk));
          res.on("end", () =>
            resolve(/"nextLink":"([^"]+)"/.exec(last?.toString("latin1").slice(-1000) ?? "")?.[1]),
          );
          res.on("error", reject);
        },
      )
      .on("error", reject);
  });

const listUrl = (emulatorUrl: string, workspace: string) =>
  `${emulatorUrl}/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/${workspace}/jobs?api-version=2022-10-01&listViewType=ActiveOnly&jobType=Command&tag=workforce.exp-${workspace}`;

/** The first list page of `workspace` as the emulator sends it (bytes). */
export async function recordPage(emulator: { url: string; ca: string }, workspace: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    https
      .get(
        listUrl(emulator.url, workspace),
        { ca: emulator.ca, headers: { authorization: "Bearer emulator" } },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (chunk: Buffer) => parts.push(chunk));
          res.on("end", () => resolve(Buffer.concat(parts)));
          res.on("error", reject);
        },
      )
      .on("error", reject);
  });
}

/**
 * `pages` GETs in a chain per region, every region at once, against a server in another process that
 * answers each with `page` as is (no work per request, so it takes as little of the machine as a remote
 * service would): CPU per job of this process.
 */
export async function fixedPageFloor(page: Buffer, regions: number, pages: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "workforce-floor-"));
  const file = join(dir, "page.json");
  writeFileSync(file, page);
  const { key, cert, ca } = loadTestTls();
  const script = `
    const https = require("node:https"); const body = require("node:fs").readFileSync(${JSON.stringify(file)});
    const server = https.createServer({ key: ${JSON.stringify(key)}, cert: ${JSON.stringify(cert)} }, (req, res) => {
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "content-length": body.length });
      res.end(body);
    });
    server.listen(0, "127.0.0.1", () => console.log(server.address().port));
    process.on("SIGTERM", () => process.exit(0));`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [port] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
    const agent = new https.Agent({ keepAlive: true, ca });
    const chain = async () => {
      for (let i = 0; i < pages; i++) await get(agent, `https://127.0.0.1:${port}/page`);
    };
    await Promise.all(Array.from({ length: regions }, chain));
    const cpu = process.cpuUsage();
    await Promise.all(Array.from({ length: regions }, chain));
    const used = process.cpuUsage(cpu);
    agent.destroy();
    const jobs = (JSON.parse(page.toString("utf8")) as { value: unknown[] }).value.length;
    return (used.user + used.system) / (regions * pages * jobs);
  } finally {
    child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The region's page reader alone over `page` in 16 KB chunks (as TLS hands them over): CPU per job, best of 8. */
export function scanCost(page: Buffer, tagKey: string): number {
  const chunks: Buffer[] = [];
  for (let at = 0; at < page.length; at += 16_384) chunks.push(Buffer.from(page.subarray(at, at + 16_384)));
  let jobs = 0;
  const read = (times: number) => {
    for (let n = 0; n < times; n++) {
      const reader = new JobPageReader(tagKey, () => jobs++);
      for (const chunk of chunks) reader.write(chunk);
      reader.end();
    }
  };
  read(300);
  let best = Infinity;
  for (let round = 0; round < 8; round++) {
    jobs = 0;
    const cpu = process.cpuUsage();
    read(500);
    const used = process.cpuUsage(cpu);
    best = Math.min(best, (used.user + used.system) / jobs);
  }
  return best;
}

/**
 * The transport's own cost: one tick's pages (every region at once, pages in a chain) fetched with
 * node:https and a keep-alive agent, bodies received and dropped. CPU per job of this process.
 */
export async function transportFloor(
  emulator: { url: string; ca: string },
  regions: number,
): Promise<number> {
  const agent = new https.Agent({ keepAlive: true, ca: emulator.ca });
  const chain = async (i: number) => {
    let url: string | undefined = listUrl(emulator.url, `r${String(i).padStart(3, "0")}`);
    while (url) url = await get(agent, url);
  };
  await Promise.all(Array.from({ length: regions }, (_, i) => chain(i)));
  const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: regions }, (_, i) => chain(i)));
  const used = process.cpuUsage(cpu);
  agent.destroy();
  return (used.user + used.system) / (regions * Math.ceil(50_000 / regions));
}
