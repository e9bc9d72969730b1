import { startAzurite as startAzuriteProcess, type AzuriteOptions } from "../../src/demo/azurite.js";
import type { AzuriteInstance } from "../../src/demo/azurite.js";

export { AZURITE_ACCOUNT, AZURITE_KEY, type AzuriteInstance } from "../../src/demo/azurite.js";

/**
 * How long a test waits for Azurite to listen. It usually takes 1-3 s, but on a loaded 2-core machine (a
 * test file starting several peers at once, other test workers busy) it has been seen to take more than
 * 20 s: a slow start is not a failure of anything under test. Below the hook timeout of vitest.config.ts,
 * so a start that never comes still fails with Azurite's own message and output.
 */
export const AZURITE_TEST_START_TIMEOUT_MS = 90_000;

/** Azurite for tests: as the demo's, with a start timeout generous enough for a loaded machine. */
export function startAzurite(options: AzuriteOptions = {}): Promise<AzuriteInstance> {
  return startAzuriteProcess({ startTimeoutMs: AZURITE_TEST_START_TIMEOUT_MS, ...options });
}
