// Seeds the registry from the topology: creates the cache nodes and data centers that are missing and leaves
// existing ones (and runtime changes to them) alone. Run by the local cloud at start and by the deployment.
import type { Topology } from '../../protocol/topology.ts';
import type { RegistryStore } from './registry-store.ts';

export interface SeedResult {
  readonly createdCacheNodes: string[];
  readonly createdDataCenters: string[];
}

export async function seedRegistry(
  registry: RegistryStore,
  topology: Topology,
  bucketFor: (cacheNodeId: string) => string,
): Promise<SeedResult> {
  const result: SeedResult = { createdCacheNodes: [], createdDataCenters: [] };
  for (const n of topology.cacheNodes) {
    if (await registry.getCacheNode(n.id)) continue;
    await registry.putCacheNode(n.id, {
      name: n.name,
      region: n.region,
      location: n.location,
      capacity: n.capacity,
      status: 'active',
      bucket: bucketFor(n.id),
    });
    result.createdCacheNodes.push(n.id);
  }
  for (const d of topology.dataCenters) {
    if (await registry.getDataCenter(d.id)) continue;
    // A home node removed at runtime is not re-created; the data center then uses the nearest active node.
    const home =
      d.homeCacheNode && (await registry.getCacheNode(d.homeCacheNode)) ? d.homeCacheNode : undefined;
    await registry.putDataCenter(d.id, {
      name: d.name,
      address: d.address,
      location: d.location,
      homeCacheNode: home,
    });
    result.createdDataCenters.push(d.id);
  }
  return result;
}
