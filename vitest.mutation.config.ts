import { defineConfig } from "vitest/config";

/** The unit tests of the decision core (src/policy, the snapshot and act phases): what Stryker runs. */
export default defineConfig({
  test: {
    include: [
      "test/unit/policy-*.test.ts",
      "test/unit/estimators.test.ts",
      "test/unit/snapshot*.test.ts",
      "test/unit/act.test.ts",
      "test/unit/fence.test.ts",
      "test/unit/reconciler*.test.ts",
      "test/unit/start-backoff.test.ts",
    ],
    setupFiles: ["test/support/loopback-only.ts"],
    env: { AZURE_TOKEN_CREDENTIALS: "EnvironmentCredential" },
  },
});
