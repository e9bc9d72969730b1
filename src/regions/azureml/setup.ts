import { ConfigError } from "../../config/errors.js";
import type { AzuremlRegionConfig } from "./config.js";
import { checkMlConfig } from "./ml-api.js";
import { resolveCompute } from "./names.js";
import { loadJobTemplate, TemplateError, type JobTemplate } from "./template.js";

/**
 * What a region's configuration means, checked before any call: the compute's id, the job template, and
 * the settings that only make sense together. Each problem is a ConfigError naming the field.
 */
export function parseRegionConfig(config: AzuremlRegionConfig): {
  compute: { name: string; id: string };
  template: JobTemplate;
} {
  const ref = {
    subscriptionId: config.subscriptionId,
    resourceGroup: config.resourceGroup,
    workspace: config.workspace,
  };
  const where = `regions[${config.name}]`;
  let compute: { name: string; id: string };
  let template: JobTemplate;
  try {
    compute = resolveCompute(config.compute, ref);
  } catch (error) {
    throw new ConfigError([
      { where: `${where}.compute`, message: (error as Error).message.replace(/^compute: /, "") },
    ]);
  }
  try {
    template = loadJobTemplate(config.template, config.environmentName ?? `${config.experiment}-image`);
  } catch (error) {
    if (error instanceof TemplateError)
      throw new ConfigError([
        { where: `${where}.template.${error.field}`, message: error.message.replace(/^template \S+: /, "") },
      ]);
    throw error;
  }
  if (
    config.credential?.type === "emulator" &&
    !["127.0.0.1", "localhost", "[::1]"].includes(new URL(config.armEndpoint).hostname)
  ) {
    throw new ConfigError([
      {
        where: `${where}.credential.type`,
        message: `"emulator" sends a dummy token and is only for an ARM emulator on 127.0.0.1; armEndpoint is ${config.armEndpoint}`,
      },
    ]);
  }
  checkMlConfig(config, template, where);
  return { compute, template };
}
