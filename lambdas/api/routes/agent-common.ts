// Shared by the agent routes: who may act for which end of a migration, and cached manifests.
import type { WorkItem } from '../../../protocol/api/agent.ts';
import type { Manifest } from '../../../protocol/manifest.ts';
import type { StoredWork } from '../../aws/migration-store.ts';
import { manifestKey } from '../../domain/control-keys.ts';
import { conflict, forbidden, notFound } from '../../domain/errors.ts';
import type { MigrationRecord } from '../../domain/migration.ts';
import { isTerminal } from '../../domain/migration.ts';
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
  const dc = end.role === 'source' ? m.sourceDataCenterId : end.dataCenterId;
  if (end.role === 'destination' && !m.destinations.includes(dc)) {
    throw notFound('destination', `${migrationId}/${dc}`);
  }
  if (p.kind === 'agent' && p.dataCenterId !== dc) {
    if (!m.destinations.includes(p.dataCenterId) && m.sourceDataCenterId !== p.dataCenterId) {
      throw notFound('migration', migrationId);
    }
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

/** Page cursors over positions in a list. */
export function positionCursor(cursor: string | undefined, length: number): number {
  if (cursor === undefined) return 0;
  const n = Number.parseInt(cursor, 10);
  if (!/^\d+$/.test(cursor) || n > length) throw conflict('cursor is not a position in this list');
  return n;
}
