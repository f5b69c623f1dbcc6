// Registry routes: data centers (VRN) and cache nodes (CCN). Reads for every principal, writes for admins.
import * as api from '../../../protocol/api/registry.ts';
import { conflict } from '../../domain/errors.ts';
import { type CacheNodeRecord, chooseCacheNode, type DataCenterRecord } from '../../domain/registry.ts';
import { wakeSlotWaiters } from '../../workflow/wake.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { type Principal, requireAdmin, requireDataCenterAccess } from '../principal.ts';

export function registryRoutes(deps: ApiDeps) {
  const { registry, cacheNodes } = deps;

  const viewCacheNode = (n: CacheNodeRecord, p: Principal): api.CacheNode => ({
    ...n,
    // Which migrations hold slots is other data centers' business: agents see only how many.
    reservations: p.kind === 'admin' ? [...n.reservations] : [],
    homedDataCenters: [...n.homedDataCenters],
    address: cacheNodes.address(n.id),
    activeTransfers: n.reservations.length,
  });

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
      return c.json({ ...page, items: page.items.map((n) => viewCacheNode(n, c.get('principal'))) }, 200);
    })
    .openapi(api.getCacheNode, async (c) => {
      return c.json(
        viewCacheNode(await registry.requireCacheNode(c.req.valid('param').cacheNodeId), c.get('principal')),
        200,
      );
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
      // A PUT without a status keeps the node's status (renaming a down node must not revive it).
      const status = input.status ?? (await registry.getCacheNode(cacheNodeId))?.status ?? 'active';
      const { created, node } = await registry.putCacheNode(cacheNodeId, { ...input, status, bucket });
      return c.json(viewCacheNode(node, c.get('principal')), created ? 201 : 200);
    })
    .openapi(api.patchCacheNode, async (c) => {
      requireAdmin(c.get('principal'));
      const patch = c.req.valid('json');
      const node = await registry.patchCacheNode(c.req.valid('param').cacheNodeId, {
        ...(patch.capacity !== undefined ? { capacity: patch.capacity } : {}),
        ...(patch.status !== undefined ? { status: patch.status } : {}),
      });
      // More capacity, or a node active again: migrations queued there may start now.
      await wakeSlotWaiters(deps, node.id);
      return c.json(viewCacheNode(node, c.get('principal')), 200);
    })
    .openapi(api.deleteCacheNode, async (c) => {
      requireAdmin(c.get('principal'));
      await registry.deleteCacheNode(c.req.valid('param').cacheNodeId);
      return c.body(null, 204);
    });
}
