// Backup policy routes: a VM backed up to some destinations every interval, on its own.
import * as api from '../../../protocol/api/policies.ts';
import { invalid } from '../../domain/errors.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { requireAdmin } from '../principal.ts';

export function policyRoutes(deps: ApiDeps) {
  const withStatus = async (p: api.BackupPolicy): Promise<api.BackupPolicy> => {
    if (!p.lastRun?.migrationId) return p;
    const m = await deps.migrations.get(p.lastRun.migrationId);
    return m ? { ...p, lastRun: { ...p.lastRun, status: m.status } } : p;
  };

  return router()
    .openapi(api.listPolicies, async (c) => {
      requireAdmin(c.get('principal'));
      const { limit, cursor } = c.req.valid('query');
      const page = await deps.policies.list(limit, cursor);
      return c.json({ ...page, items: await Promise.all(page.items.map(withStatus)) }, 200);
    })
    .openapi(api.getPolicy, async (c) => {
      requireAdmin(c.get('principal'));
      return c.json(await withStatus(await deps.policies.require(c.req.valid('param').policyId)), 200);
    })
    .openapi(api.putPolicy, async (c) => {
      requireAdmin(c.get('principal'));
      const { policyId } = c.req.valid('param');
      const input = c.req.valid('json');
      await deps.registry.requireDataCenter(input.sourceDataCenterId);
      for (const [i, d] of input.destinations.entries()) {
        if (!(await deps.registry.getDataCenter(d.dataCenterId))) {
          throw invalid(`destinations.${i}.dataCenterId`, `unknown data center "${d.dataCenterId}"`);
        }
      }
      const existing = await deps.policies.get(policyId);
      const now = new Date().toISOString();
      // A first run time may carry any offset; it is kept, and is the first slot, in UTC.
      const firstRunAt = input.firstRunAt ? new Date(input.firstRunAt).toISOString() : undefined;
      const policy: api.BackupPolicy = {
        ...input,
        ...(firstRunAt ? { firstRunAt } : {}),
        id: policyId,
        // The first run is at firstRunAt, else at once; changing a policy keeps its schedule unless it gives one.
        nextRunAt: firstRunAt ?? existing?.nextRunAt ?? now,
        ...(existing?.lastRun ? { lastRun: existing.lastRun } : {}),
        ...(existing?.recentRuns ? { recentRuns: existing.recentRuns } : {}),
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      };
      await deps.policies.put(policy);
      return c.json(policy, existing ? 200 : 201);
    })
    .openapi(api.deletePolicy, async (c) => {
      requireAdmin(c.get('principal'));
      await deps.policies.delete(c.req.valid('param').policyId);
      return c.body(null, 204);
    });
}
