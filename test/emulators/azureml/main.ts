import { parseArgs } from "node:util";
import { startArmEmulator } from "./server.js";
import { startMlApiEmulator } from "./ml-api.js";
import { testTlsDir } from "../tls/index.js";
import { join } from "node:path";

/**
 * Standalone ARM emulator, to point a daemon at by hand:
 *   node dist/test/emulators/azureml/main.js --port 8443 [--ml-port 8444] [--max-nodes 10] [--cluster cpu-cluster] [--run-ms 60000]
 * Any workspace is created on first use with one cluster. Clients must trust the printed CA file. The
 * ml.azure.com front end (resume, index listing) listens on --ml-port: a region's `mlEndpoint`.
 */
const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8443" },
    "ml-port": { type: "string", default: "8444" },
    host: { type: "string", default: "127.0.0.1" },
    cluster: { type: "string", default: "cpu-cluster" },
    "max-nodes": { type: "string", default: "10" },
    "run-ms": { type: "string" },
    "page-size": { type: "string", default: "100" },
  },
});

function intOption(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    console.error(`--${name}: expected a non-negative integer; given ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}

const runMs = intOption("run-ms", values["run-ms"]);
const emulator = await startArmEmulator({
  port: intOption("port", values.port)!,
  host: values.host!,
  pageSize: intOption("page-size", values["page-size"])!,
  autoCreate: { clusterName: values.cluster!, maxNodeCount: intOption("max-nodes", values["max-nodes"])! },
  ...(runMs !== undefined ? { timing: { runMs } } : {}),
});
const ml = await startMlApiEmulator({
  arm: emulator,
  port: intOption("ml-port", values["ml-port"])!,
  host: values.host!,
});
// Stop on a signal from the moment it says it is up: a caller may signal it right after the line below.
const stop = () => void Promise.all([ml.close(), emulator.close()]).then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
console.log(
  JSON.stringify({
    msg: "ARM emulator listening",
    url: emulator.url,
    mlEndpoint: ml.url,
    caFile: join(testTlsDir(), "ca.pem"),
    cluster: values.cluster,
    maxNodes: Number(values["max-nodes"]),
  }),
);
