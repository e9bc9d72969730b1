import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AZURITE_ACCOUNT, AZURITE_KEY } from "../support/azurite.js";
import { CLI_PATH, REPO_ROOT } from "../support/cli.js";

// The documented stand-ins: how a command as the docs write it becomes one that runs here, against
// Azurite and the emulators on 127.0.0.1. Every substitution is a row below, so a reader of a failure can
// see what ran.

/** Synopsis placeholders, by the option (or command) they follow: every optional part is given. */
const PLACEHOLDERS: Array<[string, string]> = [
  // workforce plan / simulate
  ["--queue N", "--queue 1600"],
  ["--running R", "--running 3"],
  ["--concurrency C", "--concurrency 4"],
  ["--pending P", "--pending 0"],
  ["--max M", "--max 100"],
  ["--policy step|proportional|predictive", "--policy predictive"],
  ["--task-seconds T", "--task-seconds 1200"],
  ["--startup-seconds S", "--startup-seconds 330"],
  ["--payback-ratio P", "--payback-ratio 8"],
  ["--trace FILE", "--trace examples/simulate/trace.json"],
  ["--cluster FILE", "--cluster examples/simulate/cluster.yaml"],
  ["--policy P", "--policy step"],
  ["--policy-module PATH", "--policy-module {scratch}/my-policy.mjs"], // the README's my-policy.mjs
  ["--seed N", "--seed 7"],
  ["--chart FILE.svg", "--chart {scratch}/chart.svg"],
  ["--chart run.svg", "--chart {scratch}/run.svg"], // not into the clone
  // region commands: the docs' config has one region, eastus
  ["--region R", "--region eastus"],
  ["hire N", "hire 1"],
  ["lay-off N", "lay-off 1"],
  ["scale-to N", "scale-to 1"],
  ["--count N", "--count 1"],
  ["--operation OP", "--operation do-not-accept-new-tasks"],
  ["--ca-file ca.pem", "--ca-file test/emulators/tls/ca.pem"],
  // queues and workers: the docs' queue is `tasks` in Azurite's account (a bare name + connection string)
  ["worker QUEUE", "worker tasks"],
  ["push QUEUE", "push tasks"],
  ["-c CMD", "-c true"],
  ["--concurrency N", "--concurrency 2"],
  ["--idle-timeout S", "--idle-timeout 0"],
  ["--visibility-timeout S", "--visibility-timeout 60"],
  ["--worker-id ID", "--worker-id docs-worker"],
  ["--num-retries N", "--num-retries 1"],
  ["-e KEY=VALUE", "-e GREETING=hello"],
  ["--cwd DIR", "--cwd {scratch}"],
  ["-- WORKER COMMAND", "-- workforce worker tasks --concurrency 1"],
  ["-- <worker command>", "-- workforce worker tasks --concurrency 1"],
  // the demo
  ["--tasks N", "--tasks 3"],
  ["--metrics-port P", "--metrics-port 0"],
];

/** Names of the docs' examples that stand for something here. */
const STAND_INS: Array<[RegExp, string]> = [
  // From a clone `npx workforce` is the package's own bin (checked once with npx itself).
  [/^npx workforce /, "workforce "],
  // package.json: "start": "node dist/src/cli/main.js demo" (checked); 9464 may be taken on a shared machine.
  [/^npm start -- /, "workforce demo "],
  [/^npm start$/, "workforce demo --metrics-port 0"],
  // Upstream's Python worker is not installed here; ours takes the same queues and tasks.
  [/\bai4s-jobq (\S+) worker --num-workers (\d+)/, "workforce worker $1 --concurrency $2"],
  [/\bai4s-jobq (\S+) worker\b/, "workforce worker $1"],
  // Storage accounts of the examples are Azurite's (its queue `tasks`, reached with a connection string).
  [/\b(?:myaccount|mystorageaccount)\/(\w+)/, "$1"],
  // Local regions' argv placeholders.
  [/\{node\}/g, JSON.stringify(process.execPath)],
  [/\{workforce\}/g, JSON.stringify(CLI_PATH)],
  [/\{queue\}/g, "tasks"],
  [/\{concurrency\}/g, "2"],
  // Fixed ports of the README's walkthrough become free ones (the emulators print what they got).
  [/(--(?:port|ml-port|amqp-port|admin-port)) \d+/g, "$1 0"],
  [
    /(node_modules\/azurite\/dist\/src\/azurite\.js [^&]*?)\s*(&?)$/,
    "$1 --blobHost 127.0.0.1 --blobPort 0 --queueHost 127.0.0.1 --queuePort 0 --tableHost 127.0.0.1 --tablePort 0 $2",
  ],
  [/\/tmp\/sb\.json/g, "{scratch}/sb.json"],
  [/\bemulators\.yaml\b/g, "{scratch}/emulators.yaml"],
];

const HAS_JQ = spawnSync("jq", ["--version"]).status === 0;

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Brackets and ellipses of a synopsis dropped, then every placeholder and stand-in substituted. */
export function mapCommand(text: string, scratch: string): string {
  const start = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")).scripts.start;
  if (/^npm start\b/.test(text) && start !== "node dist/src/cli/main.js demo")
    throw new Error(`package.json's start script changed (${start}): update the npm start stand-in`);
  // `workforce simulate ... --task-seconds 1200`: the README's simulate command with one more option.
  let mapped = text.replace(
    /^workforce simulate \.\.\. /,
    "workforce simulate --trace examples/simulate/trace.json --cluster examples/simulate/cluster.yaml --policy step --policy predictive ",
  );
  // `workforce agent -- ...`: the wrapped worker command elided.
  mapped = mapped.replace(/ -- \.\.\.$/, " -- WORKER COMMAND");
  if (/^(npx )?workforce /.test(mapped))
    mapped = mapped
      .replace(/\[|\]/g, " ")
      .replace(/(\S)\.\.\.(?=\s|$)/g, "$1")
      .replace(/ \.\.\.(?=\s|$)/g, "");
  mapped = mapped.replace(/\s+/g, " ").trim();
  for (const [from, to] of PLACEHOLDERS)
    mapped = mapped.replace(new RegExp(`(?<=^|\\s)${escape(from)}(?=\\s|$)`, "g"), to);
  for (const [from, to] of STAND_INS) mapped = mapped.replace(from, to);
  // Without jq (it is not a dependency of this project), the same field through node.
  if (!HAS_JQ)
    mapped = mapped.replace(
      /\| jq \.(\w+)$/,
      `| node -e 'process.stdout.write(JSON.stringify(JSON.parse(require("fs").readFileSync(0, "utf8")).$1, null, 2))'`,
    );
  mapped = mapped.replaceAll("{scratch}", scratch);
  const left = mapped
    .split(" ")
    .find((word) => /^(?:[A-Z][A-Z0-9_]*|<[^>]*>|\.\.\.)$/.test(word) && !/^SIG[A-Z0-9]+$/.test(word));
  if (left !== undefined) throw new Error(`${text}: no stand-in for the placeholder ${left}`);
  return mapped;
}

/** Azurite's account on the given ports, as `UseDevelopmentStorage=true` names it on the default ones. */
export function azuriteConnectionString(blobPort: number, queuePort: number): string {
  return (
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};` +
    `BlobEndpoint=http://127.0.0.1:${blobPort}/${AZURITE_ACCOUNT};` +
    `QueueEndpoint=http://127.0.0.1:${queuePort}/${AZURITE_ACCOUNT};`
  );
}
