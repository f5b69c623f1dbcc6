// A batch's one status (draft §4.1): counts per status, bytes, and the VM furthest from done.
import { createHash } from 'node:crypto';
import { isTerminal, type MigrationRecord, type MigrationStatus } from './migration.ts';

/** How far a migration is, 0..1: its bytes moved over the bytes it has to move, once its image is known. */
export function progressOf(m: MigrationRecord): number {
  if (m.status === 'COMPLETED') return 1;
  if (!m.image) return 0;
  const legs = m.destinations.map((d) => m.legs[d]).filter((l) => l !== undefined);
  const payload = m.image.size - m.image.zeroBytes;
  const total =
    m.upload.bytesTotal +
    legs.reduce((n, l) => n + l.bytesToReplicate, 0) +
    legs.reduce((n, l) => n + (l.local ? 0 : payload), 0);
  if (total === 0) return legs.every((l) => l.status === 'COMPLETED') ? 1 : 0;
  const done =
    Math.min(m.upload.bytesDone, m.upload.bytesTotal) +
    legs.reduce((n, l) => n + Math.min(l.bytesReplicated, l.bytesToReplicate), 0) +
    legs.reduce((n, l) => n + (l.local ? 0 : Math.min(l.bytesDownloaded, payload)), 0);
  return Math.min(1, done / total);
}

export interface BatchRollUp {
  readonly status: 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
  readonly counts: Partial<Record<MigrationStatus, number>>;
  readonly bytes: {
    image: number;
    uploaded: number;
    cached: number;
    shared: number;
    replicated: number;
    copied: number;
    downloaded: number;
  };
  readonly slowest?: { migrationId: string; vmId: string; status: MigrationStatus; progress: number };
}

export function rollUp(migrations: readonly MigrationRecord[]): BatchRollUp {
  const counts: Partial<Record<MigrationStatus, number>> = {};
  const bytes = { image: 0, uploaded: 0, cached: 0, shared: 0, replicated: 0, copied: 0, downloaded: 0 };
  for (const m of migrations) {
    counts[m.status] = (counts[m.status] ?? 0) + 1;
    bytes.image += m.image?.size ?? 0;
    bytes.uploaded += m.upload.bytesDone;
    bytes.cached += m.upload.bytesCached;
    bytes.shared += m.upload.chunksShared;
    bytes.copied += m.bytesCopied ?? 0;
    for (const l of Object.values(m.legs)) {
      bytes.replicated += l.bytesReplicated;
      bytes.downloaded += l.bytesDownloaded;
    }
  }
  const ended = migrations.every((m) => isTerminal(m.status));
  const status = !ended
    ? 'RUNNING'
    : migrations.every((m) => m.status === 'COMPLETED')
      ? 'COMPLETED'
      : migrations.every((m) => m.status === 'CANCELLED')
        ? 'CANCELLED'
        : 'FAILED';
  // Running: the least advanced. All ended: the one that took longest.
  const key = (m: MigrationRecord) =>
    ended ? -(Date.parse(m.updatedAt) - Date.parse(m.createdAt)) : progressOf(m);
  const slowest = [...migrations].sort((a, b) => key(a) - key(b))[0];
  return {
    status,
    counts,
    bytes,
    ...(slowest
      ? {
          slowest: {
            migrationId: slowest.id,
            vmId: slowest.vmId,
            status: slowest.status,
            progress: progressOf(slowest),
          },
        }
      : {}),
  };
}

const base36 = (hex: string, length: number) =>
  BigInt(`0x${hex}`).toString(36).padStart(length, '0').slice(0, length);

/** Migration ids of a batch are derived from it, so creating the batch again creates nothing twice. */
export function batchMigrationId(batchId: string, index: number): string {
  return `mig-${base36(createHash('sha256').update(`${batchId}#${index}`).digest('hex'), 26)}`;
}

export function newBatchId(now = Date.now()): string {
  const rand = createHash('sha256').update(`${now}${Math.random()}${process.pid}`).digest('hex');
  return `batch-${now.toString(36).padStart(9, '0')}${base36(rand, 16)}`;
}
