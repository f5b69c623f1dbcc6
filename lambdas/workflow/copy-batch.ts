// CMN copy task: server-side copies of one batch of chunks into destination cache nodes, bounded in
// parallel. A chunk already present (with the right checksum) is skipped; every copy is checked before it is
// recorded in the content index.
import type { S3ServiceException } from '@aws-sdk/client-s3';
import { bucketRef } from '../aws/cache-nodes.ts';
import { mapLimit } from '../domain/concurrency.ts';
import { type CopyItem, replicationBatchKey } from '../domain/control-keys.ts';
import { TaskFailure, TransientError, task } from './task.ts';

export const COPY_CONCURRENCY = 16;

export interface CopyBatchEvent {
  readonly migrationId: string;
  readonly prefix: string;
  readonly batch: number;
}

export const handler = task(
  async (deps, event: CopyBatchEvent): Promise<{ copied: number; skipped: number }> => {
    const items = await deps.storage.getJson<CopyItem[]>(
      deps.control,
      replicationBatchKey(event.prefix, event.batch),
    );
    if (!items)
      throw new TaskFailure(
        'PlanMissing',
        `replication batch ${event.batch} of ${event.migrationId} is missing`,
      );
    const nodes = new Map((await deps.registry.allCacheNodes()).map((n) => [n.id, bucketRef(n)]));
    const ref = (id: string) => {
      const node = nodes.get(id);
      if (!node) throw new TaskFailure('CacheNodeGone', `cache node ${id} is no longer registered`);
      return node;
    };
    let copied = 0;
    let skipped = 0;
    const done = new Map<string, CopyItem[]>();
    await mapLimit(items, COPY_CONCURRENCY, async (item) => {
      const to = ref(item.to);
      if ((await deps.storage.chunkState(to, item.sha256, item.length)) === 'present') {
        skipped++;
      } else {
        try {
          await deps.storage.copyChunk(ref(item.from), to, item.sha256);
        } catch (err) {
          if ((err as S3ServiceException).name === 'NoSuchKey') {
            throw new TaskFailure(
              'ChunkLost',
              `chunk ${item.sha256} is indexed at ${item.from} but not stored there`,
            );
          }
          throw err;
        }
        const state = await deps.storage.chunkState(to, item.sha256, item.length);
        if (state !== 'present')
          throw new TransientError(`copy of chunk ${item.sha256} to ${item.to} is ${state}`);
        copied++;
      }
      const list = done.get(item.to) ?? [];
      list.push(item);
      done.set(item.to, list);
    });
    for (const [to, list] of done) {
      await deps.contentIndex.record(
        to,
        list.map((i) => ({ sha256: i.sha256, length: i.length })),
      );
    }
    const m = await deps.migrations.require(event.migrationId);
    const increment: (readonly [readonly string[], number])[] = [];
    for (const leg of Object.values(m.legs)) {
      const list = leg.cacheNodeId ? done.get(leg.cacheNodeId) : undefined;
      if (!list || leg.status === 'COMPLETED') continue;
      increment.push(
        [['legs', leg.dataCenterId, 'chunksReplicated'], list.length],
        [['legs', leg.dataCenterId, 'bytesReplicated'], list.reduce((n, i) => n + i.length, 0)],
      );
    }
    if (increment.length > 0) await deps.migrations.update(m.id, { increment });
    return { copied, skipped };
  },
);
