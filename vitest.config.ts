import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    // Hooks start peers (Azurite, emulators); under load a start can take a while (see test/support/azurite.ts).
    hookTimeout: 120_000,
    // Integration tests start servers and child processes; two cores here, so keep the pool small.
    maxWorkers: 2,
    // Fails any connection that would leave 127.0.0.1.
    setupFiles: ["test/support/loopback-only.ts"],
    env: {
      // Never let DefaultAzureCredential probe the instance-metadata address.
      AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential",
    },
  },
});
