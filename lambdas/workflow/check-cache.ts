// CMN content discovery (draft §3.1 step 4, per chunk): which distinct chunks of the image does any cache node
// already hold? Only the rest must be uploaded; the list goes to the control bucket, the state stays small.

import { distinctNonZeroChunks, sumLengths } from '../domain/chunks.ts';
import { type UploadPlanEntry, uploadPlanKey } from '../domain/control-keys.ts';
import { loadManifest } from './manifest.ts';
import { task } from './task.ts';

export interface CheckCacheOutput {
  readonly uploadChunks: number;
  readonly uploadBytes: number;
}

export const handler = task(async (deps, event: { migrationId: string }): Promise<CheckCacheOutput> => {
  const m = await deps.migrations.require(event.migrationId);
  const manifest = await loadManifest(deps, m.id);
  const chunks = distinctNonZeroChunks(manifest);
  // Down nodes cannot serve copies; draining ones still can.
  const nodes = (await deps.registry.allCacheNodes()).filter((n) => n.status !== 'down').map((n) => n.id);
  const holders = await deps.contentIndex.holders(
    chunks.map((c) => c.sha256),
    nodes,
  );
  const missing: UploadPlanEntry[] = chunks.filter((c) => !holders.has(c.sha256));
  await deps.storage.putJson(deps.control, uploadPlanKey(m.id, m.attempt), missing);
  const uploadBytes = sumLengths(missing);
  const cached = chunks.length - missing.length;
  await deps.migrations.update(
    m.id,
    {
      set: [
        [
          ['upload'],
          {
            chunksTotal: missing.length,
            bytesTotal: uploadBytes,
            chunksDone: 0,
            bytesDone: 0,
            bytesCached: sumLengths(chunks) - uploadBytes,
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
            : `${missing.length} of ${chunks.length} distinct chunks to upload (${uploadBytes} bytes); ${cached} already cached`,
      },
    },
  );
  return { uploadChunks: missing.length, uploadBytes };
});
