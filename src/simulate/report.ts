import type { SimulationResult } from "./run.js";

export interface NamedResult {
  policy: string;
  result: SimulationResult;
}

/** The JSON of one run: the totals, without the per-tick series. */
export function summary(run: NamedResult): Record<string, unknown> {
  const { series: _series, ...totals } = run.result;
  return { policy: run.policy, ...totals };
}

const ROWS: Array<{
  label: string;
  value: (r: SimulationResult) => number;
  digits: number;
  ratio?: boolean;
}> = [
  { label: "makespan (min)", value: (r) => r.makespanSeconds / 60, digits: 1, ratio: true },
  { label: "node-hours", value: (r) => r.nodeHours, digits: 1, ratio: true },
  { label: "utilization", value: (r) => r.utilization, digits: 3 },
  { label: "tasks finished", value: (r) => r.tasksFinished, digits: 0 },
  { label: "tasks interrupted", value: (r) => r.tasksInterrupted, digits: 0 },
  { label: "mean wait (min)", value: (r) => r.meanWaitSeconds / 60, digits: 1, ratio: true },
  { label: "max active workers", value: (r) => r.maxActive, digits: 0 },
  { label: "hires", value: (r) => r.hires, digits: 0 },
  { label: "cancels", value: (r) => r.cancels, digits: 0 },
  { label: "drains", value: (r) => r.drains, digits: 0 },
  { label: "learned task time (s)", value: (r) => r.estimates.taskSeconds, digits: 0 },
];

/** Policies side by side; ratios against the first one where they mean something. */
export function formatTable(runs: readonly NamedResult[]): string {
  const header = ["", ...runs.map((run) => run.policy)];
  const rows = ROWS.map((row) => {
    const base = row.value(runs[0]!.result);
    return [
      row.label,
      ...runs.map((run, index) => {
        const value = row.value(run.result);
        const text = value.toFixed(row.digits);
        return row.ratio && index > 0 && base > 0 ? `${text} (${(value / base).toFixed(2)}x)` : text;
      }),
    ];
  });
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[0]!) : cell.padStart(widths[column]!)))
      .join("  ");
  const lines = [line(header), ...rows.map(line)];
  if (runs.length > 1) lines.push(`(ratios against ${runs[0]!.policy})`);
  return `${lines.join("\n")}\n`;
}
