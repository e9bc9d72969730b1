import { describe, expect, it } from "vitest";
import { loadJobTemplate, TemplateError, nodesPerWorker } from "../../src/regions/azureml/template.js";
import { azuremlRegionSchema } from "../../src/regions/azureml/index.js";

// Template checks by the REST spec (2022-10-01): what the service would refuse at submit is refused at load.
const base = { command: "run", environment: "azureml:env:1" };
const fieldOf = (run: () => unknown): string | undefined => {
  try {
    run();
  } catch (error) {
    if (error instanceof TemplateError)
      return `${error.field}: ${error.message.replace(/^template \S+: /, "")}`;
    throw error;
  }
  return undefined;
};

describe("AzureML template checks by the spec", () => {
  it("shm_size needs its unit (\\d+[bBkKmMgG]), in CLI v2 and ARM JSON", () => {
    expect(fieldOf(() => loadJobTemplate({ ...base, resources: { shm_size: "2048" } }, "x"))).toMatch(
      /^resources.shm_size: .*with its unit/,
    );
    expect(
      loadJobTemplate({ ...base, resources: { shm_size: "8G" } }, "x").properties.resources,
    ).toMatchObject({
      shmSize: "8G",
    });
    const arm = { properties: { jobType: "Command", command: "run", environmentId: "azureml:env:1" } };
    expect(
      fieldOf(() => loadJobTemplate({ properties: { ...arm.properties, resources: { shmSize: "1" } } }, "x")),
    ).toMatch(/^properties.resources.shmSize:/);
  });

  it("environment names match the service's pattern", () => {
    expect(fieldOf(() => loadJobTemplate({ ...base, environment: "azureml:my.env:1" }, "x"))).toMatch(
      /^environment: expected an environment name/,
    );
    expect(
      fieldOf(() => loadJobTemplate({ command: "run", environment: { image: "img", name: "-bad" } }, "x")),
    ).toMatch(/^environment.name:/);
    expect(() => azuremlRegionSchema.shape.environmentName.parse("has.dot")).toThrow(/environment name/);
    expect(loadJobTemplate({ ...base, environment: "azureml:my-env_2:7" }, "x").environmentRef).toEqual({
      name: "my-env_2",
      version: "7",
    });
  });

  it("accepts registry environments (azureml://registries/...) as the job's environmentId", () => {
    const id = "azureml://registries/azureml/environments/sklearn-1.5/versions/3";
    expect(loadJobTemplate({ ...base, environment: id }, "x").properties.environmentId).toBe(id);
    const arm = loadJobTemplate(
      { properties: { jobType: "Command", command: "run", environmentId: id } },
      "x",
    );
    expect(arm.properties.environmentId).toBe(id);
    expect(
      fieldOf(() => loadJobTemplate({ ...base, environment: "azureml://registries/r/models/m" }, "x")),
    ).toMatch(/^environment: expected a registry environment/);
  });

  it("reads the nodes per worker from instance_count", () => {
    expect(nodesPerWorker(loadJobTemplate({ ...base, resources: { instance_count: 4 } }, "x"))).toBe(4);
    expect(nodesPerWorker(loadJobTemplate(base, "x"))).toBe(1);
  });
});
