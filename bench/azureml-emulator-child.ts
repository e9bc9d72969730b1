import { startArmEmulator } from "../test/emulators/azureml/server.js";
import { SUBSCRIPTION, RESOURCE_GROUP, seededJobProperties } from "../test/emulators/azureml/fixtures.js";

/**
 * The ARM emulator in its own process, for the memory bench: the daemon's side is measured alone.
 * argv: regions, active jobs per region. Prints `{"url", "ca"}` on one line once seeded.
 */
const regions = Number(process.argv[2] ?? 84);
const perRegion = Number(process.argv[3] ?? 596);
const emulator = await startArmEmulator({ stepMs: 0, budget: false, logBodies: false });
for (let i = 0; i < regions; i++) {
  const name = `r${String(i).padStart(3, "0")}`;
  const ws = emulator.workspace(SUBSCRIPTION, RESOURCE_GROUP, name);
  ws.addCluster("cluster", perRegion);
  for (let j = 0; j < perRegion; j++)
    ws.createJob(`exp-${name}-a${j}`, seededJobProperties(ws, `exp-${name}`, true));
  ws.schedule();
}
// The request log would grow without end over 20 ticks; the bench does not read it.
setInterval(() => emulator.requests.splice(0), 1000).unref();
process.stdout.write(JSON.stringify({ url: emulator.url, ca: emulator.ca }) + "\n");
process.on("SIGTERM", () => void emulator.close().then(() => process.exit(0)));
