// Running the cache collector on request (POST /v1/cache/gc): the same pass the collector state machine runs every
// 15 minutes, here synchronous and so bounded to fit the API's 29 seconds. Admin only.
import * as api from '../../../protocol/api/cache-gc.ts';
import { AppError } from '../../domain/errors.ts';
import { collectGarbage } from '../../workflow/collect-garbage.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { requireAdmin } from '../principal.ts';

/** The part of API Gateway's 29 s a collection request may spend sweeping and marking. */
const GC_REQUEST_SECONDS = 20;

export function cacheGcRoutes(deps: ApiDeps) {
  return router().openapi(api.collectGarbage, async (c) => {
    requireAdmin(c.get('principal'));
    const input = c.req.valid('json');
    const registered = new Set((await deps.registry.allCacheNodes()).map((n) => n.id));
    const wanted = input.cacheNodeIds ?? [...registered];
    const unknown = (input.cacheNodeIds ?? [])
      .map((id, i) => ({ id, i }))
      .filter(({ id }) => !registered.has(id));
    if (unknown.length > 0) {
      const issues = unknown.map(({ id, i }) => ({
        field: `cacheNodeIds.${i}`,
        reason: `unknown cache node "${id}"`,
      }));
      throw new AppError(
        'validation',
        `cacheNodeIds: no such cache node(s): ${unknown.map(({ id }) => id).join(', ')}`,
        { issues },
      );
    }
    // The request's share of index entries, split among its nodes (collectGarbage visits them one after the other).
    const maxEntriesPerNode = Math.max(
      1,
      Math.floor(api.GC_REQUEST_MAX_ENTRIES / Math.max(1, wanted.length)),
    );
    const report = await collectGarbage(deps, {
      dryRun: input.dryRun,
      nodes: wanted,
      maxEntries: maxEntriesPerNode,
      // API Gateway gives up after 29 s: what is left when the time is up waits for the next pass (`partial`).
      deadline: Date.now() + GC_REQUEST_SECONDS * 1000,
    });
    const body: api.CollectGarbageReport = { ...report, maxEntriesPerNode, nodes: [...report.nodes] };
    return c.json(body, 200);
  });
}
