import { readFileSync } from "node:fs";

/**
 * Prints the mutation scores of the decision core from Stryker's JSON report, against their goals, and
 * exits 1 when one is missed. Score = (killed + timed out) / (every mutant that ran or had no coverage),
 * as Stryker counts it.
 */
interface Report {
  files: Record<string, { mutants: Array<{ status: string }> }>;
}

const GOALS: Array<{ name: string; goal: number; matches: (path: string) => boolean }> = [
  { name: "src/policy", goal: 90, matches: (path) => path.startsWith("src/policy/") },
  { name: "src/controller/snapshot.ts", goal: 80, matches: (path) => path === "src/controller/snapshot.ts" },
  { name: "src/controller/act.ts", goal: 80, matches: (path) => path === "src/controller/act.ts" },
];

const path = process.argv[2] ?? "reports/mutation/mutation.json";
const report = JSON.parse(readFileSync(path, "utf8")) as Report;
let missed = 0;
for (const { name, goal, matches } of GOALS) {
  const statuses = Object.entries(report.files)
    .filter(([file]) => matches(file.replace(/\\/g, "/")))
    .flatMap(([, file]) => file.mutants.map((mutant) => mutant.status));
  const detected = statuses.filter((status) => status === "Killed" || status === "Timeout").length;
  const valid = statuses.filter(
    (status) => !["CompileError", "RuntimeError", "Ignored"].includes(status),
  ).length;
  const score = valid === 0 ? 100 : (100 * detected) / valid;
  const ok = score >= goal;
  if (!ok) missed++;
  console.log(
    `${name.padEnd(28)} ${score.toFixed(2).padStart(6)}%  (${detected}/${valid} mutants killed; goal >= ${goal}%) ${ok ? "ok" : "MISSED"}`,
  );
}
process.exitCode = missed > 0 ? 1 : 0;
