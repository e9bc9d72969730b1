import { randomInt } from "node:crypto";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** `{experiment}-{8 chars a-z0-9}` from a cryptographic source (36^8 ~ 2.8e12 names: a clash is a retry race). */
export function newJobName(experiment: string): string {
  let suffix = "";
  for (let i = 0; i < 8; i++) suffix += ALPHABET[randomInt(ALPHABET.length)];
  return `${experiment}-${suffix}`;
}

export interface WorkspaceRef {
  subscriptionId: string;
  resourceGroup: string;
  workspace: string;
}

export function workspaceId(ref: WorkspaceRef): string {
  return `/subscriptions/${ref.subscriptionId}/resourceGroups/${ref.resourceGroup}/providers/Microsoft.MachineLearningServices/workspaces/${ref.workspace}`;
}

const COMPUTE_ID =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.MachineLearningServices\/workspaces\/([^/]+)\/computes\/([^/]+)$/i;

/**
 * The compute's bare name (for GET computes/{name}) and its full ARM id (for the job's computeId), from a
 * bare name, `azureml:NAME`, or a full id. Upstream once put a full id into computes/{name} and silently
 * stopped hiring; a full id must name this region's workspace.
 */
export function resolveCompute(compute: string, ref: WorkspaceRef): { name: string; id: string } {
  const text = compute.trim().replace(/^azureml:/, "");
  const match = COMPUTE_ID.exec(text);
  if (match) {
    const [, subscription, resourceGroup, workspace, name] = match;
    if (
      subscription!.toLowerCase() !== ref.subscriptionId.toLowerCase() ||
      resourceGroup!.toLowerCase() !== ref.resourceGroup.toLowerCase() ||
      workspace!.toLowerCase() !== ref.workspace.toLowerCase()
    ) {
      throw new Error(
        `compute: the ARM id names workspace ${subscription}/${resourceGroup}/${workspace}, but the region is ${ref.subscriptionId}/${ref.resourceGroup}/${ref.workspace}`,
      );
    }
    return { name: name!, id: `${workspaceId(ref)}/computes/${name}` };
  }
  if (text.includes("/")) {
    throw new Error(
      `compute: expected a cluster name or .../workspaces/WS/computes/NAME; given ${JSON.stringify(compute)}`,
    );
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(text)) {
    throw new Error(
      `compute: expected a cluster name (letters, digits, '-'); given ${JSON.stringify(compute)}`,
    );
  }
  return { name: text, id: `${workspaceId(ref)}/computes/${text}` };
}
