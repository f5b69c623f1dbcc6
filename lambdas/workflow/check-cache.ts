// CMN content discovery (draft §3.1 step 4, per chunk): which distinct chunks of the image does any cache node
// already hold? The rest must be uploaded — by this migration, unless another one is uploading the same chunk
// right now (clones of one base, a batch): that chunk is awaited, not sent twice. Lists go to the control
// bucket; the state stays small.

import type { Uses } from '../aws/deps.ts';
import { distinctNonZeroChunks, sumLengths } from '../domain/chunks.ts';
import { awaitedKey, type UploadPlanEntry, uploadPlanKey } from '../domain/control-keys.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { loadManifest } from './manifest.ts';
import { task } from './task.ts';

export interface CheckCacheOutput {
  readonly uploadChunks: number;
  readonly uploadBytes: number;
  readonly awaitedChunks: number;
}

export const handler = task(
  TASK_FUNCTIONS.checkCache,
  async (deps, event: { migrationId: string }): Promise<CheckCacheOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    const manifest = await loadManifest(deps, m.id);
    const chunks = distinctNonZeroChunks(manifest);
    // Down nodes cannot serve copies; draining ones still can.
    const nodes = (await deps.registry.allCacheNodes()).filter((n) => n.status !== 'down').map((n) => n.id);
    const holders = await deps.contentIndex.holders(
      chunks.map((c) => c.sha256),
      nodes,
    );
    const missing = chunks.filter((c) => !holders.has(c.sha256));
    // Claims held by migrations that ended are taken over at once.
    const { mine, others } = await deps.contentIndex.claimUploads(
      missing.map((c) => c.sha256),
      m.id,
      await endedClaimers(
        deps,
        missing.map((c) => c.sha256),
        m.id,
      ),
    );
    const plan: UploadPlanEntry[] = missing.filter((c) => mine.has(c.sha256));
    const awaited: UploadPlanEntry[] = missing.filter((c) => others.has(c.sha256));
    await Promise.all([
      deps.storage.putJson(deps.control, uploadPlanKey(m.id, m.attempt), plan),
      deps.storage.putJson(deps.control, awaitedKey(m.id, m.attempt), awaited),
    ]);
    const uploadBytes = sumLengths(plan);
    const cached = chunks.length - missing.length;
    const sharedWith = [...new Set(others.values())];
    await deps.migrations.update(
      m.id,
      {
        set: [
          [
            ['upload'],
            {
              chunksTotal: plan.length,
              bytesTotal: uploadBytes,
              chunksDone: 0,
              bytesDone: 0,
              bytesCached: sumLengths(chunks) - sumLengths(missing),
              chunksShared: awaited.length,
            },
          ],
        ],
      },
      {
        history: {
          event: 'cache-checked',
          message:
            missing.length === 0
              ? `all ${chunks.length} distinct chunks are already cached: nothing to upload`
              : `${plan.length} of ${chunks.length} distinct chunks to upload (${uploadBytes} bytes); ${cached} already cached` +
                (awaited.length > 0
                  ? `; ${awaited.length} being uploaded by ${sharedWith.join(', ')}: awaited, not sent twice`
                  : ''),
        },
      },
    );
    return { uploadChunks: plan.length, uploadBytes, awaitedChunks: awaited.length };
  },
);

/** Migrations holding claims on these chunks that have ended (their uploads will never finish). */
export async function endedClaimers(
  deps: Uses<'contentIndex' | 'migrations'>,
  digests: readonly string[],
  self: string,
): Promise<Set<string>> {
  const claims = await deps.contentIndex.claimHolders(digests);
  const ended = new Set<string>();
  for (const holder of new Set(claims.values())) {
    if (holder === self) continue;
    const other = await deps.migrations.get(holder);
    if (!other || ['COMPLETED', 'FAILED', 'CANCELLED'].includes(other.status)) ended.add(holder);
  }
  return ended;
}
