// After this migration's own upload: are the chunks other migrations were uploading for it stored now? If one
// of those migrations ended without uploading them, this one claims and uploads them itself.
import type { Uses } from '../aws/deps.ts';
import { awaitedKey, type UploadPlanEntry } from '../domain/control-keys.ts';
import type { MigrationRecord } from '../domain/migration.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { endedClaimers } from './check-cache.ts';
import { task } from './task.ts';

export interface CheckSharedOutput {
  /** ready: all stored; waiting: still being uploaded elsewhere; reclaim: their uploader ended — check again. */
  readonly status: 'ready' | 'waiting' | 'reclaim';
  readonly missing: number;
}

export interface SharedStatus extends CheckSharedOutput {
  /** The migrations uploading what is missing (when waiting). */
  readonly uploaders: readonly string[];
}

export async function sharedStatus(
  deps: Uses<'migrations' | 'registry' | 'contentIndex' | 'storage' | 'control'>,
  m: MigrationRecord,
): Promise<SharedStatus> {
  const awaited =
    (await deps.storage.getJson<UploadPlanEntry[]>(deps.control, awaitedKey(m.id, m.attempt))) ?? [];
  if (awaited.length === 0) return { status: 'ready', missing: 0, uploaders: [] };
  const nodes = (await deps.registry.allCacheNodes()).filter((n) => n.status !== 'down').map((n) => n.id);
  const holders = await deps.contentIndex.holders(
    awaited.map((c) => c.sha256),
    nodes,
  );
  const missing = awaited.filter((c) => !holders.has(c.sha256)).map((c) => c.sha256);
  if (missing.length === 0) return { status: 'ready', missing: 0, uploaders: [] };
  const claims = await deps.contentIndex.claimHolders(missing);
  const ended = await endedClaimers(deps, missing, m.id);
  const orphaned = missing.some((sha) => !claims.has(sha) || ended.has(claims.get(sha) as string));
  if (orphaned) return { status: 'reclaim', missing: missing.length, uploaders: [] };
  return { status: 'waiting', missing: missing.length, uploaders: [...new Set(claims.values())] };
}

export const handler = task(
  TASK_FUNCTIONS.checkShared,
  async (deps, event: { migrationId: string }): Promise<CheckSharedOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    const { status, missing } = await sharedStatus(deps, m);
    if (status === 'reclaim') {
      await deps.migrations.addHistory(
        m.id,
        'shared-chunks-orphaned',
        'a migration uploading shared chunks ended; uploading them here',
      );
    }
    return { status, missing };
  },
);
