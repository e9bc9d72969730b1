import { describe, expect, it } from "vitest";
import { JobPageReader, PageSyntaxError, type JobFields } from "../../src/regions/azureml/job-page.js";

const TAG = "workforce.exp-a";

/** A job as the service lists it (decorated: services, outputs, systemData, service properties). */
function job(
  name: string,
  overrides: Record<string, unknown> = {},
  tags: Record<string, string> = { [TAG]: "exp-a" },
) {
  return {
    id: `/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/jobs/${name}`,
    name,
    type: "Microsoft.MachineLearningServices/workspaces/jobs",
    systemData: {
      createdAt: "2026-12-01T12:45:56.034Z",
      createdBy: "someone@example.com",
      createdByType: "User",
    },
    properties: {
      jobType: "Command",
      command: 'python -c "print(\\"hi\\")" # {not: [an, object]}',
      experimentName: "exp-a",
      isArchived: false,
      tags,
      displayName: name,
      description: null,
      properties: { "_azureml.ComputeTargetType": "amlctrain" },
      resources: { instanceCount: 2, shmSize: "2g", properties: null },
      outputs: { default: { jobOutputType: "uri_folder", uri: "azureml://x", mode: "ReadWriteMount" } },
      services: {
        Studio: { jobServiceType: "Studio", port: null, endpoint: "https://ml.azure.com/runs/x?a=%2F" },
      },
      parameters: {},
      status: "Running",
      ...overrides,
    },
  };
}

/** What JSON.parse makes of a job, in the reader's terms: the reference the reader must agree with. */
function expected(resource: Record<string, unknown>): JobFields {
  const p = resource.properties as Record<string, unknown> | null;
  const props = p && typeof p === "object" && !Array.isArray(p) ? p : undefined;
  const tags = props?.tags as Record<string, unknown> | undefined;
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const count = (props?.resources as { instanceCount?: unknown } | undefined)?.instanceCount;
  return {
    name: str(resource.name),
    hasProperties: props !== undefined,
    experimentName: str(props?.experimentName),
    status: str(props?.status),
    tagged: !!tags && typeof tags === "object" && Object.prototype.hasOwnProperty.call(tags, TAG),
    archived: props?.isArchived === true,
    createdAt: str((resource.systemData as Record<string, unknown> | undefined)?.createdAt),
    instanceCount: typeof count === "number" ? count : undefined,
  };
}

function read(chunks: (Buffer | string)[]) {
  const jobs: JobFields[] = [];
  const resources: unknown[] = [];
  const reader = new JobPageReader(TAG, (fields, page) => {
    jobs.push({ ...fields });
    resources.push(page.resource());
  });
  for (const chunk of chunks) reader.write(chunk);
  reader.end();
  return { jobs, resources, nextLink: reader.nextLink, valueKind: reader.valueKind };
}

const odd = [
  job("a-0"),
  job("a-1", { status: "Queued", resources: { instanceCount: 1 } }),
  job("a-2", { isArchived: true, status: "Completed" }),
  job("a-3", {}, { team: "x" }),
  job("a-4", { experimentName: "other" }),
  job("ünïcødé-名前-5", { status: "Weird\u00e9", description: 'line\nbreak \u2028 and "quotes" \\ back' }),
  { name: "no-properties" },
  { name: "null-properties", properties: null },
  { name: 7, properties: { status: 3, tags: [TAG], resources: { instanceCount: "2" } } },
  job("a-9", { resources: { instanceCount: 1.5 } }),
];
const page = { value: odd, nextLink: "https://management.azure.com/next?$skipToken=a%3D%3D" };

describe("JobPageReader: a job list page read as it arrives", () => {
  it("reads what JSON.parse reads, for every kind of job the service or a stranger may list", () => {
    const { jobs, resources, nextLink, valueKind } = read([JSON.stringify(page)]);
    expect(jobs).toEqual(odd.map((o) => expected(o as Record<string, unknown>)));
    expect(resources).toEqual(odd);
    expect(nextLink).toBe(page.nextLink);
    expect(valueKind).toBe("array");
  });

  it("gives the same jobs however the body is split (at every byte: escapes and multi-byte characters cut in two)", () => {
    const bytes = Buffer.from(JSON.stringify({ nextLink: page.nextLink, value: odd.slice(4, 7) }, null, 1));
    const whole = read([bytes]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const split = read([bytes.subarray(0, cut), bytes.subarray(cut, cut + 300), bytes.subarray(cut + 300)]);
      expect(split.jobs).toEqual(whole.jobs);
      expect(split.resources).toEqual(whole.resources);
      expect(split.nextLink).toBe(page.nextLink);
    }
  });

  it("reads escaped keys and values as JSON.parse does, and the last of duplicate keys", () => {
    const text =
      '{"value":[{"n\\u0061me":"esc\\u0061ped","properties":{"status":"Queued","experimentName":"exp-a",' +
      '"tags":{"workforce.exp\\u002da":"1"},"status":"Running","isArchived":true,"isArchived":false}}]}';
    const { jobs } = read([text]);
    expect(jobs).toEqual([expected(JSON.parse(text).value[0])]);
    expect(jobs[0]).toMatchObject({ name: "escaped", status: "Running", tagged: true, archived: false });
  });

  it("tells what `value` held: absent, or not an array", () => {
    expect(read(['{"nextLink":null}']).valueKind).toBe("absent");
    expect(read(['{"value":{"a":1}}']).valueKind).toBe("other");
    expect(read(['{"value":[]}']).jobs).toEqual([]);
  });

  it.each([
    ["an HTML page", "<html><body>Sign in</body></html>"],
    ["a page cut short", JSON.stringify(page).slice(0, 900)],
    ["a page cut inside a job's string", '{"value":[{"name":"a'],
    ["text after the page", '{"value":[]} x'],
    ["a job that is not an object member list", '{"value":[{"name" "a"}]}'],
    ["two value arrays", '{"value":[],"value":[]}'],
  ])("refuses %s (a partial read is a failed read)", (_, text) => {
    expect(() => read([text])).toThrow(PageSyntaxError);
  });
});
