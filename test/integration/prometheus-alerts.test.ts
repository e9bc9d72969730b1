import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../support/cli.js";
import { NO_PROMETHEUS, NO_PROMETHEUS_MESSAGE, promtool } from "./prometheus-support.js";

// The alerts of deploy/prometheus/alerts.yaml under promtool's rule unit tests: synthetic series, one
// minute apart, and the alerts that must (and must not) fire at given times.

const ALERTS_PATH = join(REPO_ROOT, "deploy", "prometheus", "alerts.yaml");
const scratch = mkdtempSync(join(tmpdir(), "wf-alerts-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Series {
  series: string;
  values: string;
}
interface AlertCase {
  eval_time: string;
  alertname: string;
  exp_alerts: { exp_labels: Record<string, string>; exp_annotations?: Record<string, string> }[];
}

function runRuleTest(name: string, inputSeries: Series[], cases: AlertCase[]) {
  const file = join(scratch, `${name}.yaml`);
  writeFileSync(
    file,
    stringify({
      rule_files: [ALERTS_PATH],
      evaluation_interval: "1m",
      tests: [{ interval: "1m", input_series: inputSeries, alert_rule_test: cases }],
    }),
  );
  return promtool(["test", "rules", file]);
}

/** Run promtool's rule unit test and require it to pass (its output names the failing case). */
function expectRulesPass(name: string, inputSeries: Series[], cases: AlertCase[]): void {
  const result = runRuleTest(name, inputSeries, cases);
  expect(result.output).toContain("SUCCESS");
  expect(result.status).toBe(0);
}

const A = 'job="wf", instance="a"';

/** WorkforceReconcileStalled firing for instance "a" at `evalTime`, the last success `ago` before. */
function stalledFiresAt(evalTime: string, ago: string): AlertCase {
  return {
    eval_time: evalTime,
    alertname: "WorkforceReconcileStalled",
    exp_alerts: [
      {
        exp_labels: { job: "wf", instance: "a", severity: "critical" },
        exp_annotations: {
          summary: "workforce-autoscaler has not completed a successful tick for 3 intervals",
          description: `a: the last successful reconcile was ${ago} ago. Workers are neither hired nor laid off. Check the daemon's logs and the queue's reachability.`,
        },
      },
    ],
  };
}
const leader = (value = 1): Series => ({ series: `workforce_leader{${A}}`, values: `${value}x40` });
const intervalA = (seconds = 60): Series => ({
  series: `workforce_reconcile_interval_seconds{${A}}`,
  values: `${seconds}x40`,
});
const startedAtZero: Series = {
  series: `process_start_time_seconds{${A}}`,
  values: "0x40",
};

if (NO_PROMETHEUS) console.warn(`SKIPPED prometheus-alerts.test.ts: ${NO_PROMETHEUS_MESSAGE}`);

describe.skipIf(NO_PROMETHEUS)("alert rules", () => {
  it("WorkforceReconcileStalled fires once 3 intervals pass without a successful tick, on the leader only", () => {
    expectRulesPass(
      "stalled",
      [
        // Ticks succeed every minute until minute 3, then stop.
        { series: `workforce_last_reconcile_success_timestamp_seconds{${A}}`, values: "0+60x3 180x30" },
        startedAtZero,
        intervalA(),
        leader(),
        // A standby replica never ticks: it must stay quiet.
        {
          series: 'workforce_last_reconcile_success_timestamp_seconds{job="wf", instance="b"}',
          values: "0x40",
        },
        { series: 'process_start_time_seconds{job="wf", instance="b"}', values: "0x40" },
        { series: 'workforce_leader{job="wf", instance="b"}', values: "0x40" },
        { series: 'workforce_reconcile_interval_seconds{job="wf", instance="b"}', values: "60x40" },
      ],
      [
        { eval_time: "5m", alertname: "WorkforceReconcileStalled", exp_alerts: [] },
        stalledFiresAt("7m", "4m 0s"),
      ],
    );
  });

  it("WorkforceReconcileStalled stays quiet while a new daemon has not had 3 intervals yet", () => {
    expectRulesPass(
      "stalled-start",
      [
        { series: `workforce_last_reconcile_success_timestamp_seconds{${A}}`, values: "0x40" },
        { series: `process_start_time_seconds{${A}}`, values: "300x40" },
        intervalA(),
        leader(),
      ],
      [
        { eval_time: "7m", alertname: "WorkforceReconcileStalled", exp_alerts: [] },
        stalledFiresAt("9m", "9m 0s"),
      ],
    );
  });

  it("WorkforceReconcileStalled follows the daemon's own interval: 3 ticks of 20 s is one minute", () => {
    expectRulesPass(
      "stalled-short-interval",
      [
        // Ticks every 20 s succeed until minute 2, then stop; 3 intervals = 60 s.
        { series: `workforce_last_reconcile_success_timestamp_seconds{${A}}`, values: "0+60x2 120x30" },
        startedAtZero,
        intervalA(20),
        leader(),
      ],
      [
        { eval_time: "3m", alertname: "WorkforceReconcileStalled", exp_alerts: [] },
        stalledFiresAt("4m", "2m 0s"),
      ],
    );
  });

  it("WorkforceRegionFailing fires for the region that keeps failing for 10 minutes, not for the others", () => {
    expectRulesPass(
      "region",
      [
        {
          series: `workforce_region_errors_total{${A}, region="east", operation="observe"}`,
          values: "0+1x30",
        },
        { series: `workforce_region_errors_total{${A}, region="west", operation="observe"}`, values: "0x30" },
        leader(),
      ],
      [
        { eval_time: "8m", alertname: "WorkforceRegionFailing", exp_alerts: [] },
        {
          eval_time: "15m",
          alertname: "WorkforceRegionFailing",
          exp_alerts: [
            {
              exp_labels: { job: "wf", instance: "a", region: "east", severity: "warning" },
              exp_annotations: {
                summary: "Region east has been failing for 10 minutes",
                description:
                  "Calls to region east keep failing (error rate 1/min). Its stale observation stands in for a few ticks, then no hires go there. See workforce_region_errors_total by operation.",
              },
            },
          ],
        },
      ],
    );
  });

  it("WorkforceQueueStarved fires after 15 minutes of waiting tasks and no running worker", () => {
    expectRulesPass(
      "starved",
      [
        { series: `workforce_queue_depth{${A}}`, values: "10x30" },
        { series: `workforce_workers{${A}, region="east", state="running"}`, values: "0x30" },
        { series: `workforce_workers{${A}, region="east", state="pending"}`, values: "3x30" },
        leader(),
        // Same queue on another deployment, with workers running: fine.
        { series: 'workforce_queue_depth{job="ok", instance="c"}', values: "10x30" },
        {
          series: 'workforce_workers{job="ok", instance="c", region="east", state="running"}',
          values: "2x30",
        },
        { series: 'workforce_leader{job="ok", instance="c"}', values: "1x30" },
      ],
      [
        { eval_time: "10m", alertname: "WorkforceQueueStarved", exp_alerts: [] },
        {
          eval_time: "16m",
          alertname: "WorkforceQueueStarved",
          exp_alerts: [
            {
              exp_labels: { job: "wf", instance: "a", severity: "critical" },
              exp_annotations: {
                summary: "Tasks are waiting and no worker has been running for 15 minutes",
                description:
                  "a: 10 tasks in the queue, zero running workers. Check WorkforceHiresFailing, region capacity (workforce_region_capacity) and workforce_dry_run.",
              },
            },
          ],
        },
      ],
    );
  });

  it("WorkforceHiresFailing fires when every hire of a region fails, not when some succeed", () => {
    expectRulesPass(
      "hires",
      [
        { series: `workforce_region_errors_total{${A}, region="east", operation="hire"}`, values: "0+2x30" },
        { series: `workforce_hired_total{${A}, region="east"}`, values: "5x30" },
        { series: `workforce_region_errors_total{${A}, region="west", operation="hire"}`, values: "0+1x30" },
        { series: `workforce_hired_total{${A}, region="west"}`, values: "0+3x30" },
      ],
      [
        { eval_time: "3m", alertname: "WorkforceHiresFailing", exp_alerts: [] },
        {
          eval_time: "12m",
          alertname: "WorkforceHiresFailing",
          exp_alerts: [
            {
              exp_labels: { job: "wf", instance: "a", region: "east", severity: "warning" },
              exp_annotations: {
                summary: "Hires in region east are failing",
                description:
                  "Every hire in region east failed over the last 10 minutes (20 failures). Check quota, the job template and the identity's role on the workspace.",
              },
            },
          ],
        },
      ],
    );
  });

  it("WorkforceQueueUnreadable fires when queue reads keep failing for 10 minutes", () => {
    expectRulesPass(
      "queue",
      [{ series: `workforce_queue_read_errors_total{${A}}`, values: "0+1x30" }, leader()],
      [
        { eval_time: "5m", alertname: "WorkforceQueueUnreadable", exp_alerts: [] },
        {
          eval_time: "15m",
          alertname: "WorkforceQueueUnreadable",
          exp_alerts: [
            {
              exp_labels: { job: "wf", instance: "a", severity: "warning" },
              exp_annotations: {
                summary: "workforce-autoscaler cannot read the queue depth",
                description:
                  "a: reading the task queue keeps failing, so ticks hold. Check the queue name, the connection string or the identity's role on the queue.",
              },
            },
          ],
        },
      ],
    );
  });

  it("WorkforceWorkersFailingToStart fires for a region whose workers keep failing before any work", () => {
    expectRulesPass(
      "failing-starts",
      [
        // east: one failed start every 5 minutes (a crash loop under backoff); west: workers that ran.
        {
          series: `workforce_worker_exits_total{${A}, region="east", outcome="failed_start"}`,
          values: "0 0 0 0 0 1 1 1 1 1 2 2 2 2 2 3 3 3 3 3 4",
        },
        {
          series: `workforce_worker_exits_total{${A}, region="west", outcome="failed_start"}`,
          values: "0x20",
        },
        {
          series: `workforce_worker_exits_total{${A}, region="west", outcome="succeeded"}`,
          values: "0+5x20",
        },
        leader(),
      ],
      [
        { eval_time: "8m", alertname: "WorkforceWorkersFailingToStart", exp_alerts: [] },
        {
          eval_time: "16m",
          alertname: "WorkforceWorkersFailingToStart",
          exp_alerts: [
            {
              exp_labels: { job: "wf", instance: "a", region: "east", severity: "warning" },
              exp_annotations: {
                summary: "Workers of region east keep failing to start",
                description:
                  "3 workers of region east failed before doing any work in the last 30 minutes; the region backs off (no hires). The daemon's warn log and `workforce status` show the exit code and the last output: check the worker command, its options and the image.",
              },
            },
          ],
        },
      ],
    );
  });
});
