// Shared by the agent routes: who may act for which end of a migration, and cached manifests.
import type { WorkItem } from '../../../protocol/api/agent.ts';
import type { Manifest } from '../../../protocol/manifest.ts';
import { taskSucceeded } from '../../aws/callbacks.ts';
import type { StoredWork } from '../../aws/migration-store.ts';
import { manifestKey } from '../../domain/control-keys.ts';
import { conflict, forbidden, invalid, notFound } from '../../domain/errors.ts';
import type { MigrationRecord } from '../../domain/migration.ts';
import { involvesDataCenter, isTerminal } from '../../domain/migration.ts';
import type { ApiDeps } from '../deps.ts';
import type { Principal } from '../principal.ts';

/** URLs handed to agents stay valid this long; agents fetch a fresh page when they expire. */
export const URL_TTL_SECONDS = 3600;

export async function migrationFor(
  deps: ApiDeps,
  p: Principal,
  migrationId: string,
  end: { role: 'source' } | { role: 'destination'; dataCenterId: string },
): Promise<MigrationRecord> {
  const m = await deps.migrations.require(migrationId);
  // An agent outside the migration learns nothing, not even which destinations it has: the same 404 as an
  // unknown id, before any other check.
  if (p.kind === 'agent' && !involvesDataCenter(m, p.dataCenterId)) throw notFound('migration', migrationId);
  const dc = end.role === 'source' ? m.sourceDataCenterId : end.dataCenterId;
  if (end.role === 'destination' && !m.destinations.includes(dc)) {
    throw notFound('destination', `${migrationId}/${dc}`);
  }
  if (p.kind === 'agent' && p.dataCenterId !== dc) {
    throw forbidden(`only the agent of "${dc}" acts as the ${end.role} of ${migrationId}`);
  }
  return m;
}

export function requireActive(m: MigrationRecord): void {
  if (isTerminal(m.status)) throw conflict(`migration ${m.id} is ${m.status}`, { status: m.status });
}

export async function requireWork(
  deps: ApiDeps,
  m: MigrationRecord,
  dataCenterId: string,
  action: WorkItem['action'],
): Promise<StoredWork> {
  const work = await deps.migrations.getWork(dataCenterId, m.id, action);
  if (!work) {
    throw conflict(
      `migration ${m.id} is not waiting for a ${action} from ${dataCenterId} (status ${m.status})`,
      {
        status: m.status,
      },
    );
  }
  return work;
}

const manifests = new Map<string, Manifest>();

/** Accepted manifests never change, so a few are kept in memory for paged reads. */
export async function cachedManifest(deps: ApiDeps, migrationId: string): Promise<Manifest> {
  const hit = manifests.get(migrationId);
  if (hit) return hit;
  const manifest = await deps.storage.getJson<Manifest>(deps.control, manifestKey(migrationId));
  if (!manifest) throw conflict(`migration ${migrationId} has no manifest yet`);
  if (manifests.size >= 8) manifests.delete(manifests.keys().next().value as string);
  manifests.set(migrationId, manifest);
  return manifest;
}

/**
 * The work item a callback answers, or undefined when a concurrent twin of this request (an agent's retry) has just
 * answered it and taken the item: `doneByTwin` re-reads the migration to confirm. Otherwise requireWork's 409.
 */
export async function workUnlessTwinDone(
  deps: ApiDeps,
  m: MigrationRecord,
  dataCenterId: string,
  action: WorkItem['action'],
  doneByTwin: () => Promise<boolean>,
): Promise<StoredWork | undefined> {
  const work = await deps.migrations.getWork(dataCenterId, m.id, action);
  if (work) return work;
  if (await doneByTwin()) return undefined;
  return requireWork(deps, m, dataCenterId, action);
}

/**
 * Runs a conditional update that a concurrent twin of this request (an agent's retry) may have made first: true if
 * this call made it; false if the twin did (the caller answers as to a repeat, and leaves the rest to the twin).
 */
export async function byThisCall(
  update: Promise<void>,
  madeBefore: () => Promise<boolean>,
): Promise<boolean> {
  try {
    await update;
    return true;
  } catch (err) {
    if (await madeBefore()) return false;
    throw err;
  }
}

/** Page cursors over positions in a list. */
export function positionCursor(cursor: string | undefined, length: number): number {
  if (cursor === undefined) return 0;
  const n = Number.parseInt(cursor, 10);
  // A cursor is the caller's input: a bad one is a 400 naming it, like the table-backed listings.
  if (!/^\d+$/.test(cursor) || n > length) throw invalid('cursor', 'is not a cursor returned by this API');
  return n;
}

/**
 * A report for something already recorded may still be owed to the workflow: after a restart the re-run can be
 * waiting on a new task token for what a late report of the old run recorded. Answer that token, once.
 */
export async function answerWaitingStep(
  deps: ApiDeps,
  m: MigrationRecord,
  dataCenterId: string,
  action: StoredWork['action'],
): Promise<void> {
  const waiting = await deps.migrations.getWork(dataCenterId, m.id, action);
  if (!waiting) return;
  await taskSucceeded(deps.sfn, waiting.taskToken);
  await deps.migrations.deleteWork(waiting);
}
