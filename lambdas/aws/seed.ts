// Seeds the registry from the topology: creates the cache nodes and data centers the topology names that were
// never seeded before, and leaves the rest alone — runtime changes are kept, and an entry removed through the
// API stays removed. Run by the local cloud at start and by the deployment.
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
  const seeded = await registry.seededIds();
  const marks: string[] = [];
  for (const n of topology.cacheNodes) {
    const mark = `cacheNode:${n.id}`;
    if (seeded.has(mark)) continue;
    marks.push(mark);
    if (await registry.getCacheNode(n.id)) continue;
    await registry.putCacheNode(n.id, {
      name: n.name,
      region: n.region,
      location: n.location,
      capacity: n.capacity,
      status: 'active',
      bucket: bucketFor(n.id),
      budgetBytes: n.budgetBytes,
    });
    result.createdCacheNodes.push(n.id);
  }
  for (const d of topology.dataCenters) {
    const mark = `dataCenter:${d.id}`;
    if (seeded.has(mark)) continue;
    marks.push(mark);
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
  await registry.markSeeded(marks);
  return result;
}
