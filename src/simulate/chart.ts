import type { SimulationResult } from "./run.js";

/**
 * An SVG chart of simulated runs, one block per policy: the queue on top (tasks), the workers below, over
 * minutes. Every line carries its name where it peaks, in its own colour, so nobody needs a legend; the
 * title of each block says the policy and the totals.
 */
export interface ChartRun {
  policy: string;
  result: SimulationResult;
}

const WIDTH = 960;
const LEFT = 70;
const RIGHT = 110;
const QUEUE_HEIGHT = 150;
const WORKERS_HEIGHT = 230;
const GAP = 46;
const BLOCK = 40 + QUEUE_HEIGHT + GAP + WORKERS_HEIGHT + 50;

const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A round step for the axis' ticks, so that a little headroom stays above the highest value. */
function niceStep(value: number, ticks: number): number {
  const raw = Math.max(value * 1.1, 1) / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * power >= raw) return step * power;
  return 10 * power;
}

interface Line {
  name: string;
  values: number[];
  color: string;
  dash?: string;
}

function panel(
  top: number,
  height: number,
  xs: number[],
  xMax: number,
  lines: Line[],
  yTitle: string,
): string[] {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const yMax = 4 * niceStep(Math.max(1, ...lines.flatMap((line) => line.values)), 4);
  const x = (seconds: number) => LEFT + (seconds / xMax) * plotWidth;
  const y = (value: number) => top + height - (value / yMax) * height;
  const out: string[] = [];
  for (let i = 0; i <= 4; i++) {
    const value = (yMax * i) / 4;
    out.push(
      `<line x1="${LEFT}" x2="${LEFT + plotWidth}" y1="${y(value)}" y2="${y(value)}" stroke="#ddd"/>`,
      `<text x="${LEFT - 6}" y="${y(value) + 4}" text-anchor="end" font-size="11" fill="#555">${Number.isInteger(value) ? value : value.toFixed(1)}</text>`,
    );
  }
  out.push(
    `<text x="${LEFT}" y="${top - 8}" font-size="12" fill="#333">${escape(yTitle)}</text>`,
    `<line x1="${LEFT}" x2="${LEFT}" y1="${top}" y2="${top + height}" stroke="#999"/>`,
  );
  const labels: Array<{ x: number; y: number; text: string; color: string }> = [];
  for (const line of lines) {
    if (line.values.every((value) => value === 0)) continue;
    const points = line.values.map((value, i) => `${x(xs[i]!).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    out.push(
      `<polyline fill="none" stroke="${line.color}" stroke-width="2"${line.dash ? ` stroke-dasharray="${line.dash}"` : ""} points="${points}"/>`,
    );
    const peak = line.values.indexOf(Math.max(...line.values));
    labels.push({ x: x(xs[peak]!) + 4, y: y(line.values[peak]!) - 5, text: line.name, color: line.color });
  }
  // Keep labels from sitting on one another.
  labels.sort((a, b) => a.y - b.y);
  for (let i = 1; i < labels.length; i++) {
    const previous = labels[i - 1]!;
    const label = labels[i]!;
    if (Math.abs(label.x - previous.x) < 90 && label.y - previous.y < 13) label.y = previous.y + 13;
  }
  for (const label of labels) {
    const anchorEnd = label.x > LEFT + plotWidth - 60;
    out.push(
      `<text x="${anchorEnd ? label.x - 8 : label.x}" y="${label.y}" font-size="12" font-weight="bold" fill="${label.color}"${anchorEnd ? ' text-anchor="end"' : ""}>${escape(label.text)}</text>`,
    );
  }
  return out;
}

export function renderChart(runs: readonly ChartRun[]): string {
  const height = BLOCK * runs.length;
  const xMax = Math.max(60, ...runs.flatMap((run) => run.result.series.at)) || 60;
  const plotWidth = WIDTH - LEFT - RIGHT;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="${WIDTH}" height="${height}" fill="white"/>`,
  ];
  runs.forEach((run, index) => {
    const top = index * BLOCK;
    const r = run.result;
    const title =
      `${run.policy}: all done in ${(r.makespanSeconds / 60).toFixed(1)} min, ${r.nodeHours.toFixed(1)} node-hours, ` +
      `${r.tasksFinished} of ${r.tasks} tasks, ${r.tasksInterrupted} interrupted, at most ${r.maxActive} workers`;
    out.push(`<text x="${LEFT}" y="${top + 22}" font-size="15" font-weight="bold">${escape(title)}</text>`);
    const xs = r.series.at;
    out.push(
      ...panel(
        top + 40 + 16,
        QUEUE_HEIGHT - 16,
        xs,
        xMax,
        [{ name: "tasks in the queue", values: r.series.queueDepth, color: "#555" }],
        "Tasks waiting or running",
      ),
      ...panel(
        top + 40 + QUEUE_HEIGHT + GAP,
        WORKERS_HEIGHT,
        xs,
        xMax,
        [
          { name: "target", values: r.series.target, color: "#888", dash: "6 4" },
          { name: "running", values: r.series.running, color: "#1f6fb4" },
          { name: "starting (pending)", values: r.series.pending, color: "#e08a00" },
          { name: "draining", values: r.series.draining, color: "#c62828" },
        ],
        "Workers (the controller's target, and the workers by state)",
      ),
    );
    const axisY = top + 40 + QUEUE_HEIGHT + GAP + WORKERS_HEIGHT;
    const stepMinutes = Math.max(1, niceStep(xMax / 60, 8));
    for (let minute = 0; minute * 60 <= xMax; minute += stepMinutes) {
      const px = LEFT + ((minute * 60) / xMax) * plotWidth;
      out.push(
        `<line x1="${px}" x2="${px}" y1="${axisY}" y2="${axisY + 4}" stroke="#999"/>`,
        `<text x="${px}" y="${axisY + 17}" text-anchor="middle" font-size="11" fill="#555">${minute}</text>`,
      );
    }
    out.push(
      `<line x1="${LEFT}" x2="${LEFT + plotWidth}" y1="${axisY}" y2="${axisY}" stroke="#999"/>`,
      `<text x="${LEFT + plotWidth / 2}" y="${axisY + 34}" text-anchor="middle" font-size="12" fill="#333">minutes since the first task was enqueued</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
