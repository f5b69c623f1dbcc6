// The chunking an image was stored with before. Chunk boundaries depend on the chunking parameters: an image chunked
// with other parameters than last time shares none of its chunks with what the cache nodes hold of it. So the
// source agent is asked to chunk an image as its latest earlier migration did (a default that changed since, an
// image first stored before packs with 4 MiB chunks), and only images never seen get the current default.
import { type ChunkingParams, resolveChunking } from '../../protocol/chunker.ts';
import type { Uses } from '../aws/deps.ts';
import { manifestKey } from '../domain/control-keys.ts';
import type { MigrationRecord } from '../domain/migration.ts';

/** Earlier migrations of the image looked at, newest first; the first with a manifest decides. */
const LOOK_BACK = 10;
/** serializeManifest writes `chunking` after four short fields: it is within the manifest's first bytes. */
const HEAD_BYTES = 1024;

/** The chunking parameters of the image's latest earlier manifest, or undefined when there is none. */
export async function earlierChunking(
  deps: Uses<'mapping' | 'storage' | 'control'>,
  m: Pick<MigrationRecord, 'id' | 'imageId'>,
): Promise<ChunkingParams | undefined> {
  const rows = await deps.mapping.queryContentMap({ imageId: m.imageId }, LOOK_BACK * 2);
  const earlier = [...new Set(rows.items.map((r) => r.migrationId))].filter((id) => id !== m.id);
  for (const id of earlier.slice(0, LOOK_BACK)) {
    const found = await chunkingOf(deps, id);
    if (found) return found;
  }
  return undefined;
}

/**
 * The chunking of a migration's own manifest (the upload step passes it on: an agent that lost its cached manifest
 * chunks the image again as it was chunked).
 */
export async function chunkingOf(
  deps: Uses<'storage' | 'control'>,
  migrationId: string,
): Promise<ChunkingParams | undefined> {
  const head = await deps.storage.getHead(deps.control, manifestKey(migrationId), HEAD_BYTES);
  return head && chunkingIn(Buffer.from(head).toString('utf8'));
}

/** The chunking object of a manifest's first bytes, when it is there and valid. */
export function chunkingIn(head: string): ChunkingParams | undefined {
  const m = /"chunking":(\{[^{}]*\})/.exec(head);
  if (!m?.[1]) return undefined;
  try {
    const c = JSON.parse(m[1]) as Partial<ChunkingParams>;
    return resolveChunking({ minSize: c.minSize, avgSize: c.avgSize, maxSize: c.maxSize });
  } catch {
    return undefined;
  }
}
