// Mutation testing of the decision core against its unit tests: `npm run test:mutation`.
// Slow (minutes), so it is not part of `.ci/run`; the property tests it relies on run in `npm test`.
/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts" },
  mutate: ["src/policy/**/*.ts", "src/controller/snapshot.ts", "src/controller/act.ts"],
  coverageAnalysis: "perTest",
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  clearTextReporter: { allowColor: false, logTests: false },
  tempDirName: ".stryker-tmp",
  concurrency: 2,
  thresholds: { high: 90, low: 80, break: null },
  ignorePatterns: ["dist", "reports", ".stryker-tmp", "coverage"],
};
