import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { startAzurite, type AzuriteInstance } from "./azurite.js";
import { startArmEmulator, type ArmEmulator, type ArmEmulatorOptions } from "../emulators/azureml/server.js";
import { startMlApiEmulator, type MlApiEmulator } from "../emulators/azureml/ml-api.js";

export interface AzuremlEmulators {
  arm: ArmEmulator;
  /** The ml.azure.com emulator, over the ARM emulator's job store. */
  ml: MlApiEmulator;
}

/**
 * The ARM and ml.azure.com emulators, fresh for each test of the file: started before each test (and
 * handed to `started`), closed after it. By default the scheduler moves only when the test steps it, and
 * a cancel takes a minute (a cancelled job stays Canceling).
 */
export function azuremlEmulatorsPerTest(
  started: (emulators: AzuremlEmulators) => void,
  options: ArmEmulatorOptions = { stepMs: 0, timing: { cancelMs: 60_000 } },
): void {
  let emulators: AzuremlEmulators | undefined;
  beforeEach(async () => {
    const arm = await startArmEmulator(options);
    emulators = { arm, ml: await startMlApiEmulator({ arm }) };
    started(emulators);
  });
  afterEach(async () => {
    await emulators?.ml.close();
    await emulators?.arm.close();
    emulators = undefined;
  });
}

/**
 * Azurite with the ARM and ml.azure.com emulators, for every test of the file: started before the first
 * (and handed to `started`), closed after the last. By default the scheduler runs on its own, a step every
 * 20 ms, and a job prepares for 100 ms (for a daemon that ticks).
 */
export function azuriteAndAzuremlPerFile(
  started: (services: AzuremlEmulators & { azurite: AzuriteInstance }) => void,
  options: ArmEmulatorOptions = { stepMs: 20, timing: { prepareMs: 100 } },
): void {
  let azurite: AzuriteInstance | undefined;
  let arm: ArmEmulator | undefined;
  let ml: MlApiEmulator | undefined;
  beforeAll(async () => {
    [azurite, arm] = await Promise.all([startAzurite(), startArmEmulator(options)]);
    ml = await startMlApiEmulator({ arm });
    started({ azurite, arm, ml });
  });
  afterAll(async () => {
    await ml?.close();
    await arm?.close();
    await azurite?.stop();
  });
}
