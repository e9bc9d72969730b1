import { HttpError, PROVIDER } from "./errors.js";
import type { VirtualWorkspace } from "./workspace.js";

/** The workspace resource, as much as a client of ours reads (its `location`). */
export function workspaceResource(ws: VirtualWorkspace): unknown {
  return {
    id: ws.armId,
    name: ws.name,
    type: `${PROVIDER}/workspaces`,
    location: ws.location,
    properties: { provisioningState: "Succeeded", friendlyName: ws.name },
  };
}

/** A compute GET: an AmlCompute cluster, its numbers one level down in `properties.properties`. */
export function computeResource(ws: VirtualWorkspace, name: string): unknown {
  const nodes = ws.cluster(name);
  if (!nodes)
    throw new HttpError(404, "ResourceNotFound", `Compute ${name} not found in workspace ${ws.name}.`);
  const { cluster } = nodes;
  const counts = nodes.counts();
  return {
    id: `${ws.armId}/computes/${cluster.name}`,
    name: cluster.name,
    type: `${PROVIDER}/workspaces/computes`,
    location: "emulator",
    properties: {
      computeType: "AmlCompute",
      provisioningState: "Succeeded",
      computeLocation: "emulator",
      isAttachedCompute: false,
      disableLocalAuth: true,
      properties: {
        vmSize: cluster.vmSize,
        vmPriority: cluster.vmPriority,
        osType: "Linux",
        scaleSettings: {
          maxNodeCount: cluster.maxNodeCount,
          minNodeCount: cluster.minNodeCount,
          nodeIdleTimeBeforeScaleDown: `PT${Math.round(cluster.idleTimeMs / 1000)}S`,
        },
        allocationState: counts.allocationState,
        allocationStateTransitionTime: new Date().toISOString(),
        currentNodeCount: counts.currentNodeCount,
        targetNodeCount: counts.targetNodeCount,
        nodeStateCounts: counts.nodeStateCounts,
      },
    },
  };
}

export function putEnvironmentVersion(
  ws: VirtualWorkspace,
  name: string,
  version: string,
  body: unknown,
): { status: number; body: unknown } {
  const props = (body as { properties?: Record<string, unknown> } | undefined)?.properties;
  if (!props || typeof props.image !== "string")
    throw new HttpError(400, "UserError", "An environment version needs properties.image.", {
      code: "BadArgument",
    });
  const id = `${name}:${version}`;
  const existing = ws.environments.get(id);
  if (existing && existing.image !== props.image) {
    throw new HttpError(
      409,
      "UserError",
      `Environment ${id} already exists with another image; versions are immutable.`,
      {
        code: "Conflict",
      },
    );
  }
  ws.environments.set(id, props);
  return {
    status: existing ? 200 : 201,
    body: {
      id: `${ws.armId}/environments/${name}/versions/${version}`,
      name: version,
      type: `${PROVIDER}/workspaces/environments/versions`,
      properties: props,
    },
  };
}

export function getEnvironmentVersion(ws: VirtualWorkspace, name: string, version: string): unknown {
  const props = ws.environments.get(`${name}:${version}`);
  if (!props)
    throw new HttpError(404, "UserError", `Environment ${name}:${version} not found.`, { code: "NotFound" });
  return { id: `${ws.armId}/environments/${name}/versions/${version}`, name: version, properties: props };
}
