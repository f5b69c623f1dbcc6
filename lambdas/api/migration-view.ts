// The API representation of a migration, from its record.
import type { Migration } from '../../protocol/api/migrations.ts';
import type { HistoryEntry, MigrationRecord } from '../domain/migration.ts';

export function migrationView(m: MigrationRecord, baseUrl: string, history?: HistoryEntry[]): Migration {
  const upload = m.upload;
  return {
    id: m.id,
    url: new URL(`/v1/migrations/${m.id}`, baseUrl).toString(),
    status: m.status,
    attempt: m.attempt,
    mode: m.mode,
    onCongestion: m.onCongestion,
    queueTimeoutSeconds: m.queueTimeoutSeconds,
    overwrite: m.overwrite ?? false,
    ...(m.startAt ? { startAt: m.startAt } : {}),
    ...(m.application ? { application: m.application } : {}),
    ...(m.batchId ? { batchId: m.batchId } : {}),
    ...(m.policyId ? { policyId: m.policyId } : {}),
    ...(m.placement ? { placement: m.placement } : {}),
    ...(m.decision ? { decision: m.decision } : {}),
    sourceReleased: m.sourceReleased,
    vmId: m.vmId,
    hostId: m.hostId,
    imageId: m.imageId,
    sourceDataCenterId: m.sourceDataCenterId,
    ...(m.sourceCacheNodeId ? { sourceCacheNodeId: m.sourceCacheNodeId } : {}),
    ...(m.image
      ? {
          image: {
            size: m.image.size,
            sha256: m.image.sha256,
            format: m.image.format,
            chunks: m.image.chunks,
            uniqueChunks: m.image.uniqueChunks,
            zeroBytes: m.image.zeroBytes,
          },
        }
      : {}),
    upload: {
      ...upload,
      // Progress reported by an agent may run ahead of what was planned; never show more than 100 %.
      chunksDone: Math.min(upload.chunksDone, upload.chunksTotal),
      bytesDone: Math.min(upload.bytesDone, upload.bytesTotal),
    },
    replication: { chunksCopied: m.chunksCopied ?? 0, bytesCopied: m.bytesCopied ?? 0 },
    legs: m.destinations.flatMap((d) => {
      const leg = m.legs[d];
      if (!leg) return [];
      return [
        {
          ...leg,
          chunksReplicated: Math.min(leg.chunksReplicated, leg.chunksToReplicate),
          bytesReplicated: Math.min(leg.bytesReplicated, leg.bytesToReplicate),
        },
      ];
    }),
    ...(m.error ? { error: m.error } : {}),
    ...(history ? { history } : {}),
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
  };
}
