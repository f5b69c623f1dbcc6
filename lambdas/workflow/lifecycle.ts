// Ending a migration the same way from every path (completed, failed, cancelled): give back every cache node
// slot, free the data centers, withdraw agent work, record the outcome. Each step is idempotent.
import type { Uses } from '../aws/deps.ts';
import { MigrationTerminatedError } from '../aws/migration-store.ts';
import { cacheNodesOf, type MigrationRecord, type MigrationStatus } from '../domain/migration.ts';
import { wakeSlotWaiters, wakeSpaceWaiters, wakeUploadWaiters } from './wake.ts';

export type LifecycleDeps = Uses<'migrations' | 'slots' | 'waiters' | 'sfn'>;

export async function releaseAll(deps: LifecycleDeps, m: MigrationRecord): Promise<void> {
  const nodes = new Set([...cacheNodesOf(m), ...m.reservedCacheNodes]);
  await Promise.all([
    ...[...nodes].map((n) => deps.slots.release(n, m.id)),
    ...[...nodes].map((n) => deps.slots.releaseSpace(n, m.id)),
    ...[m.sourceDataCenterId, ...m.destinations].map((dc) => deps.slots.removeActiveMigration(dc, m.id)),
    deps.migrations.deleteAllWork(m),
  ]);
  // What waited on this migration: migrations queued for the slots and the space it held, and for the chunks it
  // uploaded.
  await Promise.all([
    ...[...nodes].map((n) => wakeSlotWaiters(deps, n)),
    ...[...nodes].map((n) => wakeSpaceWaiters(deps, n)),
    wakeUploadWaiters(deps, m.id),
  ]);
}

export async function finish(
  deps: LifecycleDeps,
  m: MigrationRecord,
  status: Extract<MigrationStatus, 'COMPLETED' | 'FAILED' | 'CANCELLED'>,
  message: string,
  error?: { code: string; message: string },
): Promise<void> {
  await releaseAll(deps, m);
  const at = new Date().toISOString();
  try {
    await deps.migrations.update(
      m.id,
      {
        status,
        set: error ? [[['error'], { ...error, at }]] : [],
        deleteFromSet:
          m.reservedCacheNodes.length > 0 ? [[['reservedCacheNodes'], new Set(m.reservedCacheNodes)]] : [],
      },
      { history: { event: status.toLowerCase(), message } },
    );
  } catch (err) {
    // Already ended (e.g. cancelled while the last step ran): the first ending stands.
    if (!(err instanceof MigrationTerminatedError)) throw err;
  }
}

/** The message inside a Step Functions error cause (Lambda's JSON or plain text). */
export function causeMessage(cause: string | undefined): string {
  if (!cause) return 'no cause recorded';
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage;
  } catch {
    // plain text
  }
  return cause;
}
