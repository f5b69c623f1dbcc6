// Registry routes: data centers (VRN) and cache nodes (CCN). Reads for every principal, writes for admins.
import * as api from '../../../protocol/api/registry.ts';
import { mapLimit } from '../../domain/concurrency.ts';
import { conflict } from '../../domain/errors.ts';
import { type CacheNodeRecord, chooseCacheNode, type DataCenterRecord } from '../../domain/registry.ts';
import type { NodeCollection } from '../../workflow/collect-garbage.ts';
import { wakeSlotWaiters, wakeSpaceWaiters } from '../../workflow/wake.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { type Principal, requireAdmin, requireDataCenterAccess } from '../principal.ts';

export function registryRoutes(deps: ApiDeps) {
  const { registry, cacheNodes, contentIndex } = deps;

  const viewCacheNode = async (n: CacheNodeRecord, p: Principal): Promise<api.CacheNode> => {
    const { spaceReservations, spaceWanted: _wanted, budgetBytes, ...rest } = n;
    const [usage, collection] = await Promise.all([
      contentIndex.usage(n.id),
      contentIndex.lastCollection<NodeCollection>(n.id),
    ]);
    return {
      ...rest,
      // Which migrations hold slots or space is other data centers' business: agents see only how much.
      reservations: p.kind === 'admin' ? [...n.reservations] : [],
      homedDataCenters: [...n.homedDataCenters],
      address: cacheNodes.address(n.id),
      activeTransfers: n.reservations.length,
      ...(budgetBytes !== undefined ? { budgetBytes } : {}),
      bytesHeld: usage.bytesHeld,
      chunksHeld: usage.chunksHeld,
      bytesReserved: Object.values(spaceReservations).reduce((sum, b) => sum + b, 0),
      ...(collection
        ? {
            collection: {
              at: collection.at,
              evictableBytes: collection.evictableBytes,
              marked: collection.marked,
              freed: collection.freed,
              pending: collection.pending,
              reason: collection.reason,
            },
          }
        : {}),
    };
  };

  /** A higher budget or none at all makes room: migrations queued for space at the node look again. */
  const roomMade = (before: CacheNodeRecord | undefined, after: CacheNodeRecord) =>
    before?.budgetBytes !== undefined &&
    (after.budgetBytes === undefined || after.budgetBytes > before.budgetBytes);

  const viewDataCenter = (dc: DataCenterRecord, nodes: readonly CacheNodeRecord[]): api.DataCenter => ({
    ...dc,
    activeMigrations: [...dc.activeMigrations],
    cacheNode: chooseCacheNode(dc, nodes),
  });

  return router()
    .openapi(api.listDataCenters, async (c) => {
      const { limit, cursor } = c.req.valid('query');
      const p = c.get('principal');
      if (p.kind === 'agent') {
        // An agent sees its own data center only: all on the first page, whatever the limit (filtering a page of
        // everyone's would hand it empty pages).
        const [own, nodes] = await Promise.all([
          cursor === undefined ? registry.getDataCenter(p.dataCenterId) : undefined,
          registry.allCacheNodes(),
        ]);
        return c.json({ items: own ? [viewDataCenter(own, nodes)] : [] }, 200);
      }
      const [page, nodes] = await Promise.all([
        registry.listDataCenters(limit, cursor),
        registry.allCacheNodes(),
      ]);
      return c.json({ ...page, items: page.items.map((dc) => viewDataCenter(dc, nodes)) }, 200);
    })
    .openapi(api.getDataCenter, async (c) => {
      const { dataCenterId } = c.req.valid('param');
      requireDataCenterAccess(c.get('principal'), dataCenterId);
      const [dc, nodes] = await Promise.all([
        registry.requireDataCenter(dataCenterId),
        registry.allCacheNodes(),
      ]);
      return c.json(viewDataCenter(dc, nodes), 200);
    })
    .openapi(api.putDataCenter, async (c) => {
      requireAdmin(c.get('principal'));
      const { dataCenterId } = c.req.valid('param');
      const { created, dataCenter } = await registry.putDataCenter(dataCenterId, c.req.valid('json'));
      return c.json(viewDataCenter(dataCenter, await registry.allCacheNodes()), created ? 201 : 200);
    })
    .openapi(api.deleteDataCenter, async (c) => {
      requireAdmin(c.get('principal'));
      const { dataCenterId } = c.req.valid('param');
      await registry.deleteDataCenter(dataCenterId);
      await deps.workQueues.remove(dataCenterId);
      return c.body(null, 204);
    })
    .openapi(api.listCacheNodes, async (c) => {
      const { limit, cursor } = c.req.valid('query');
      const page = await registry.listCacheNodes(limit, cursor);
      const items = await mapLimit(page.items, 8, (n) => viewCacheNode(n, c.get('principal')));
      return c.json({ ...page, items }, 200);
    })
    .openapi(api.getCacheNode, async (c) => {
      const node = await registry.requireCacheNode(c.req.valid('param').cacheNodeId);
      return c.json(await viewCacheNode(node, c.get('principal')), 200);
    })
    .openapi(api.putCacheNode, async (c) => {
      requireAdmin(c.get('principal'));
      const { cacheNodeId } = c.req.valid('param');
      const input = c.req.valid('json');
      const bucket = cacheNodes.bucketFor(cacheNodeId);
      if (!(await cacheNodes.bucketExists(bucket, input.region))) {
        throw conflict(
          `cache node "${cacheNodeId}" needs bucket ${bucket} in ${input.region}, which does not exist. ` +
            'Add the node to the topology in cdk.json and deploy (or restart the local cloud), then register it.',
          { bucket },
        );
      }
      const before = await registry.getCacheNode(cacheNodeId);
      // A PUT without a status keeps the node's status (renaming a down node must not revive it).
      const status = input.status ?? before?.status ?? 'active';
      const { created, node } = await registry.putCacheNode(cacheNodeId, { ...input, status, bucket });
      if (roomMade(before, node)) await wakeSpaceWaiters(deps, node.id);
      return c.json(await viewCacheNode(node, c.get('principal')), created ? 201 : 200);
    })
    .openapi(api.patchCacheNode, async (c) => {
      requireAdmin(c.get('principal'));
      const patch = c.req.valid('json');
      const { cacheNodeId } = c.req.valid('param');
      const before = patch.budgetBytes === undefined ? undefined : await registry.getCacheNode(cacheNodeId);
      const node = await registry.patchCacheNode(cacheNodeId, {
        ...(patch.capacity !== undefined ? { capacity: patch.capacity } : {}),
        ...(patch.status !== undefined ? { status: patch.status } : {}),
        ...(patch.budgetBytes !== undefined ? { budgetBytes: patch.budgetBytes } : {}),
      });
      // More capacity, or a node active again: migrations queued there may start now.
      await wakeSlotWaiters(deps, node.id);
      if (roomMade(before, node)) await wakeSpaceWaiters(deps, node.id);
      return c.json(await viewCacheNode(node, c.get('principal')), 200);
    })
    .openapi(api.deleteCacheNode, async (c) => {
      requireAdmin(c.get('principal'));
      await registry.deleteCacheNode(c.req.valid('param').cacheNodeId);
      return c.body(null, 204);
    });
}
