import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { retryDelayMs, isRetryable, withRetry, AttemptTimeoutError } from "../../src/azure/retry.js";
import { WriteRateLimiter } from "../../src/azure/rate-limiter.js";
import { armScope } from "../../src/azure/credentials.js";
import { loadJobTemplate, buildJobBody, TemplateError } from "../../src/regions/azureml/template.js";
import { classifyStatus, cancelRank } from "../../src/regions/azureml/states.js";
import { newJobName, resolveCompute } from "../../src/regions/azureml/names.js";

const answer = (status: number, headers: Record<string, string> = {}) =>
  Object.assign(new Error(`HTTP ${status}`), {
    statusCode: status,
    response: { headers: new Map(Object.entries(headers)) },
  });

describe("Azure retry policy", () => {
  it("prefers x-ms-retry-after-ms, then Retry-After (seconds or date), then min(2^attempt, 30) s + jitter", () => {
    expect(retryDelayMs(answer(429, { "x-ms-retry-after-ms": "250", "retry-after": "9" }), 1)).toBe(250);
    expect(retryDelayMs(answer(429, { "retry-after": "3" }), 1)).toBe(3000);
    const date = new Date(Date.now() + 5000).toUTCString();
    expect(retryDelayMs(answer(503, { "retry-after": date }), 1)).toBeGreaterThan(3000);
    expect(retryDelayMs(answer(500), 1, () => 0.5)).toBe(2500);
    expect(retryDelayMs(answer(500), 3, () => 0)).toBe(8000);
    expect(retryDelayMs(answer(500), 9, () => 0)).toBe(30000);
    // A reset with no answer (a stale kept-alive socket) is retried almost at once, then backs off.
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    expect(retryDelayMs(reset, 1, () => 1)).toBe(250);
    expect(retryDelayMs(reset, 2, () => 0)).toBe(4000);
  });

  it("retries 429, 5xx, network errors and attempt timeouts; not 4xx", () => {
    expect(isRetryable(answer(429))).toBe(true);
    expect(isRetryable(answer(503))).toBe(true);
    expect(isRetryable(Object.assign(new Error("reset"), { code: "ECONNRESET" }))).toBe(true);
    expect(isRetryable(new AttemptTimeoutError(10))).toBe(true);
    expect(isRetryable(answer(400))).toBe(false);
    expect(isRetryable(answer(404))).toBe(false);
    expect(isRetryable(new Error("bug"))).toBe(false);
  });

  it("gives up after the retries, and stops at once when the caller's signal fires", async () => {
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw answer(500, { "retry-after": "0" });
        },
        { retries: 2 },
      ),
    ).rejects.toThrow("HTTP 500");
    expect(calls).toBe(3);

    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("deadline")), 50);
    calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw answer(429, { "retry-after": "60" });
        },
        { retries: 5, signal: controller.signal },
      ),
    ).rejects.toThrow("deadline");
    expect(calls).toBe(1);
  });

  it("abandons a hanging attempt at its own timeout and retries it", async () => {
    let calls = 0;
    const result = await withRetry(
      (signal) => {
        calls++;
        if (calls === 1) {
          return new Promise((_, reject) =>
            signal.addEventListener("abort", () => reject(new Error("aborted"))),
          );
        }
        return Promise.resolve("ok");
      },
      { retries: 1, attemptTimeoutMs: 30, random: () => 0, maxDelayMs: 10 },
    );
    expect(result).toBe("ok");
    expect(calls).toBe(2);
  });

  it("waits in beforeAttempt (a write token) outside the attempt's deadline, but not past the caller's", async () => {
    let calls = 0;
    const slowToken = () => new Promise<void>((resolve) => setTimeout(resolve, 80));
    const result = await withRetry(
      () => {
        calls++;
        return Promise.resolve("ok");
      },
      { retries: 0, attemptTimeoutMs: 20, beforeAttempt: slowToken },
    );
    expect([result, calls]).toEqual(["ok", 1]);

    // An empty bucket that refills in ~17 min: only the caller's deadline ends the wait.
    const limiter = new WriteRateLimiter({ burst: 1, perSecond: 0.001 });
    await limiter.acquire();
    let sent = 0;
    await expect(
      withRetry(
        () => {
          sent++;
          return Promise.resolve("never");
        },
        { retries: 3, signal: AbortSignal.timeout(30), beforeAttempt: (signal) => limiter.acquire(signal) },
      ),
    ).rejects.toThrow(/timeout|aborted/i);
    expect(sent).toBe(0);
  });
});

describe("write rate limiter", () => {
  it("lets a burst through, then one token per 1/perSecond", async () => {
    let now = 0;
    const limiter = new WriteRateLimiter({ burst: 3, perSecond: 1000, now: () => now });
    for (let i = 0; i < 3; i++) await limiter.acquire();
    let fourth = false;
    const pending = limiter.acquire().then(() => (fourth = true));
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(fourth).toBe(false);
    now += 1;
    await pending;
    expect(fourth).toBe(true);
  });

  it("gives background writes only spare tokens above the reserve, and none while a hire waits", async () => {
    let now = 0;
    const limiter = new WriteRateLimiter({ burst: 4, perSecond: 1000, now: () => now });
    expect(limiter.tryAcquire(2)).toBe(true);
    expect(limiter.tryAcquire(2)).toBe(true);
    expect(limiter.tryAcquire(2)).toBe(false); // two tokens stay for hires
    await limiter.acquire();
    await limiter.acquire();
    const waiting = limiter.acquire();
    now += 5; // tokens are back, but a hire is queued first
    expect(limiter.tryAcquire(0)).toBe(false);
    await waiting;
  });

  it("releases a waiter whose signal aborts", async () => {
    const limiter = new WriteRateLimiter({ burst: 1, perSecond: 0.001 });
    await limiter.acquire();
    await expect(limiter.acquire(AbortSignal.timeout(20))).rejects.toThrow();
  });
});

describe("AzureML helpers", () => {
  it("derives the token scope from the ARM endpoint (sovereign clouds)", () => {
    expect(armScope("https://management.azure.com")).toBe("https://management.azure.com/.default");
    expect(armScope("https://management.chinacloudapi.cn/")).toBe(
      "https://management.chinacloudapi.cn/.default",
    );
  });

  it("names jobs {experiment}-{8 chars a-z0-9}, all different", () => {
    const names = new Set(Array.from({ length: 1000 }, () => newJobName("exp")));
    expect(names.size).toBe(1000);
    for (const name of names) expect(name).toMatch(/^exp-[a-z0-9]{8}$/);
  });

  it("resolves a compute from a bare name, azureml:NAME or a full ARM id, never computes//subscriptions", () => {
    const ref = { subscriptionId: "s", resourceGroup: "rg", workspace: "ws" };
    const id =
      "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/gpu";
    expect(resolveCompute("gpu", ref)).toEqual({ name: "gpu", id });
    expect(resolveCompute("azureml:gpu", ref)).toEqual({ name: "gpu", id });
    expect(resolveCompute(id, ref)).toEqual({ name: "gpu", id });
    expect(() => resolveCompute("a/b", ref)).toThrow(/compute/);
  });

  it("classifies every ARM job status and orders cancels like upstream", () => {
    expect(classifyStatus("Running")).toBe("running");
    expect(classifyStatus("NotResponding")).toBe("running");
    for (const status of [
      "NotStarted",
      "Queued",
      "Waiting",
      "Preparing",
      "Provisioning",
      "Starting",
      "Paused",
    ]) {
      expect(classifyStatus(status)).toBe("pending");
    }
    expect(classifyStatus("Unknown")).toBe("unknown");
    expect(classifyStatus("SomethingNew")).toBe("unknown");
    expect(classifyStatus("CancelRequested")).toBe("leaving");
    expect(classifyStatus("Finalizing")).toBe("leaving");
    for (const status of ["Completed", "Failed", "Canceled"]) expect(classifyStatus(status)).toBe("finished");
    const order = ["Starting", "Queued", "Paused", "Preparing", "Waiting"].sort(
      (a, b) => cancelRank(a) - cancelRank(b),
    );
    expect(order).toEqual(["Paused", "Queued", "Waiting", "Preparing", "Starting"]);
    expect(cancelRank("Running")).toBe(Infinity);
    expect(cancelRank("Unknown")).toBe(Infinity);
  });
});

describe("job templates", () => {
  const context = { experiment: "exp", computeId: "/c", tagKey: "workforce.exp" };

  it("converts a CLI v2 command job with an inline image; the version is a hash of the image", () => {
    const template = loadJobTemplate(
      {
        command: "python w.py",
        environment: { image: "repo/img:1" },
        identity: { type: "user_identity" },
        resources: { instance_type: "big" },
        limits: { timeout: "PT1H" },
      },
      "exp-image",
    );
    expect(template.format).toBe("cli-v2");
    expect(template.inlineImage).toMatchObject({ image: "repo/img:1", name: "exp-image" });
    expect(template.inlineImage!.version).toMatch(/^[0-9a-f]{16}$/);
    const body = buildJobBody(template, { ...context, environmentId: "/env/1" });
    expect(body.properties).toEqual({
      jobType: "Command",
      command: "python w.py",
      identity: { identityType: "UserIdentity" },
      resources: { instanceCount: 1, instanceType: "big" },
      limits: { jobLimitsType: "Command", timeout: "PT1H" },
      experimentName: "exp",
      computeId: "/c",
      environmentId: "/env/1",
      tags: { "workforce.exp": "exp" },
    });
  });

  it("gives each job a fresh copy: changing one body leaves the template and the next body intact", () => {
    const template = loadJobTemplate(
      { command: "x", environment: "azureml:e:1", environment_variables: { A: "1" } },
      "e",
    );
    const first = buildJobBody(template, context);
    (first.properties.environmentVariables as Record<string, string>).A = "changed";
    expect(
      (buildJobBody(template, context).properties.environmentVariables as Record<string, string>).A,
    ).toBe("1");
    expect(Object.isFrozen(template.properties)).toBe(true);
  });

  it("reads a CLI v2 YAML file as written for az ml job create", () => {
    const dir = mkdtempSync(join(tmpdir(), "wf-template-"));
    const file = join(dir, "job.yaml");
    writeFileSync(
      file,
      [
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
        "type: command",
        "command: workforce worker --queue tasks",
        "environment: azureml:jobq:7",
        "compute: azureml:gpu",
        "environment_variables:",
        "  WORKERS: 4",
        "tags:",
        "  owner: me",
      ].join("\n"),
    );
    const template = loadJobTemplate(file, "e");
    expect(template.environmentRef).toEqual({ name: "jobq", version: "7" });
    expect(buildJobBody(template, context).properties).toMatchObject({
      command: "workforce worker --queue tasks",
      environmentVariables: { WORKERS: "4" },
      tags: { owner: "me", "workforce.exp": "exp" },
      computeId: "/c",
    });
  });

  it("names the field of a bad template", () => {
    const bad = (doc: Record<string, unknown>) => () => loadJobTemplate(doc, "e");
    expect(bad({ environment: "azureml:e:1" })).toThrow(TemplateError);
    expect(bad({ environment: "azureml:e:1" })).toThrow(/template command: expected a non-empty string/);
    expect(bad({ command: "x", environment: "azureml:e:1", identity: { type: "robot" } })).toThrow(
      /identity\.type/,
    );
    expect(bad({ command: "x", environment: "azureml:e:1", resources: { shm_size: "lots" } })).toThrow(
      /resources\.shm_size/,
    );
    expect(bad({ command: "x", environment: "azureml:e:1", code: "./src" })).toThrow(
      /template code: .*upload/,
    );
    expect(bad({ command: "x", environment: "azureml:e:1", type: "sweep" })).toThrow(/template type/);
    expect(bad({ command: "x", environment: "azureml:e:1", inputs: {}, distribution: {} })).toThrow(
      /template inputs, distribution: not supported/,
    );
    expect(bad({ properties: { jobType: "Pipeline" } })).toThrow(/properties\.jobType/);
    expect(() => loadJobTemplate("/nonexistent/job.yaml", "e")).toThrow(
      /cannot read \/nonexistent\/job.yaml: ENOENT/,
    );
  });
});
