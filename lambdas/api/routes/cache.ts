// Cache routes: the cache collector's settings and pinned images. Admin only: what the cache keeps is the operator's
// call, and which images are pinned is no data center's business.
import * as api from '../../../protocol/api/cache.ts';
import type { CacheSettings } from '../../domain/cache-space.ts';
import { manifestKey } from '../../domain/control-keys.ts';
import { AppError, conflict, invalid } from '../../domain/errors.ts';
import type { PinRecord } from '../../domain/registry.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { requireAdmin } from '../principal.ts';

/** ContentMap rows read per page while looking for an image's latest completed migration. */
const ROWS_PER_PAGE = 100;

const view = (p: PinRecord): api.Pin => ({ ...p, cacheNodeIds: [...p.cacheNodeIds] });
const notPinned = (imageId: string) =>
  new AppError('not_found', `image "${imageId}" is not pinned`, { resource: 'pin', id: imageId });

export function cacheRoutes(deps: ApiDeps) {
  const { registry } = deps;

  return router()
    .openapi(api.getCacheSettings, async (c) => {
      requireAdmin(c.get('principal'));
      return c.json(await registry.cacheSettings(), 200);
    })
    .openapi(api.patchCacheSettings, async (c) => {
      requireAdmin(c.get('principal'));
      const patch = c.req.valid('json');
      // One water mark given: it must keep its place against the stored other, and the error names the one given.
      const current = await registry.cacheSettings();
      if (patch.lowWater !== undefined && patch.highWater === undefined && patch.lowWater > current.highWater)
        throw invalid('lowWater', `must not be above highWater (${current.highWater})`);
      if (patch.highWater !== undefined && patch.lowWater === undefined && patch.highWater < current.lowWater)
        throw invalid('highWater', `must not be below lowWater (${current.lowWater})`);
      const settings = await registry.putCacheSettings({
        ...(patch.graceSeconds !== undefined ? { graceSeconds: patch.graceSeconds } : {}),
        ...(patch.retentionDays !== undefined ? { retentionDays: patch.retentionDays } : {}),
        ...(patch.highWater !== undefined ? { highWater: patch.highWater } : {}),
        ...(patch.lowWater !== undefined ? { lowWater: patch.lowWater } : {}),
      });
      return c.json(settings satisfies CacheSettings, 200);
    })
    .openapi(api.listPins, async (c) => {
      requireAdmin(c.get('principal'));
      const { limit, cursor } = c.req.valid('query');
      const page = await registry.listPins(limit, cursor);
      return c.json({ ...page, items: page.items.map(view) }, 200);
    })
    .openapi(api.getPin, async (c) => {
      requireAdmin(c.get('principal'));
      const { imageId } = c.req.valid('param');
      const pin = await registry.getPin(imageId);
      if (!pin) throw notPinned(imageId);
      return c.json(view(pin), 200);
    })
    .openapi(api.putPin, async (c) => {
      requireAdmin(c.get('principal'));
      const { imageId } = c.req.valid('param');
      const input = c.req.valid('json');
      const known = new Set((await registry.allCacheNodes()).map((n) => n.id));
      for (const [i, id] of input.cacheNodeIds.entries()) {
        if (!known.has(id)) throw invalid(`cacheNodeIds.${i}`, `unknown cache node "${id}"`);
      }
      let migrationId: string;
      if (input.migrationId !== undefined) {
        const m = await deps.migrations.get(input.migrationId);
        if (!m) throw invalid('migrationId', `unknown migration "${input.migrationId}"`);
        if (m.imageId !== imageId) {
          throw invalid('migrationId', `migration ${m.id} moved image "${m.imageId}", not "${imageId}"`);
        }
        migrationId = m.id;
      } else migrationId = await latestCompleted(deps, imageId);
      // The collector keeps what the manifest lists: without one there is no version to keep.
      if (!(await deps.storage.exists(deps.control, manifestKey(migrationId)))) {
        throw conflict(
          `migration ${migrationId} has no manifest: its source has not sent one yet. Pin it once it has, or name ` +
            'another migration of the image.',
          { migrationId },
        );
      }
      const existed = (await registry.getPin(imageId)) !== undefined;
      const pin = await registry.putPin({ imageId, migrationId, cacheNodeIds: input.cacheNodeIds });
      return c.json(view(pin), existed ? 200 : 201);
    })
    .openapi(api.deletePin, async (c) => {
      requireAdmin(c.get('principal'));
      const { imageId } = c.req.valid('param');
      if (!(await registry.deletePin(imageId))) throw notPinned(imageId);
      return c.body(null, 204);
    });
}

/**
 * The image's latest COMPLETED migration, through ContentMap's byImage index (newest first). Each migration has one
 * SRC row there (and one DEST row per destination), so SRC rows name each migration once.
 */
async function latestCompleted(deps: ApiDeps, imageId: string): Promise<string> {
  let cursor: string | undefined;
  do {
    const page = await deps.mapping.queryContentMap({ imageId, status: 'SRC' }, ROWS_PER_PAGE, cursor);
    const migrations = await deps.migrations.getMany(page.items.map((r) => r.migrationId));
    const done = migrations.find((m) => m.status === 'COMPLETED');
    if (done) return done.id;
    cursor = page.nextCursor;
  } while (cursor);
  throw new AppError(
    'not_found',
    `image "${imageId}" has no completed migration: migrate it first, or name a migration (migrationId)`,
    { resource: 'image', id: imageId },
  );
}
