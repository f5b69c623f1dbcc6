// CMN content routing: for every destination cache node, the chunks it lacks, each copied from the nearest
// node that holds it, and a check of each chunk the index places there already. A pack's chunks go in the same
// batch (a copy brings the whole pack). Chunks no usable node holds
// any more (the index had them where they were lost) are counted on the migration: once the copies are done,
// the workflow has the source upload them again (StartDownloads). Batches go to the control bucket, and so does the list of them, which the state machine's
// Distributed Map reads (a list in the state's payload would bind the image size to 256 KiB).

import type { IndexedChunk } from '../aws/content-index.ts';
import { distinctNonZeroChunks } from '../domain/chunks.ts';
import { mapLimit } from '../domain/concurrency.ts';
import { replicationBatchKey, replicationItemsKey, replicationPrefix } from '../domain/control-keys.ts';
import { batchCopies, planReplication } from '../domain/replication.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { recordLost } from './lost-chunks.ts';
import { loadManifest } from './manifest.ts';
import { TaskFailure, task } from './task.ts';

export const COPY_BATCH_SIZE = 250;

export interface PlanReplicationOutput {
  /** Where the Distributed Map reads its items: one `CopyBatchEvent` per batch. */
  readonly bucket: string;
  readonly itemsKey: string;
  readonly batches: number;
  readonly copies: number;
}

export const handler = task(
  TASK_FUNCTIONS.planReplication,
  async (deps, event: { migrationId: string }): Promise<PlanReplicationOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    const manifest = await loadManifest(deps, m.id);
    const chunks = distinctNonZeroChunks(manifest);
    const nodes = (await deps.registry.allCacheNodes()).filter((n) => n.status !== 'down');
    const openLegs = m.destinations
      .map((d) => m.legs[d])
      .filter((l) => l !== undefined && l.status !== 'COMPLETED');
    const targets = [
      ...new Set(openLegs.map((l) => l?.cacheNodeId).filter((n): n is string => n !== undefined)),
    ];
    const holders = await deps.contentIndex.holders(
      chunks.map((c) => c.sha256),
      nodes.map((n) => n.id),
    );

    for (const to of targets) {
      if (!nodes.some((n) => n.id === to)) {
        throw new TaskFailure(
          'CacheNodeGone',
          `destination cache node ${to} is down or no longer registered`,
        );
      }
    }
    const plan = planReplication(chunks, targets, holders, nodes);
    if (plan.lost.length > 0) {
      await recordLost(
        deps,
        m.id,
        plan.lost.length,
        `${plan.lost.length} chunks are held by no usable cache node (the index had them where they are gone)`,
      );
    }
    const items = plan.copies;
    const prefix = replicationPrefix(m.id, m.attempt);
    // Where each chunk is stored at its source (a check's: at its node), so that a pack's chunks share a batch.
    const bySource = new Map<string, string[]>();
    for (const i of items) {
      const list = bySource.get(i.from);
      if (list) list.push(i.sha256);
      else bySource.set(i.from, [i.sha256]);
    }
    const places = new Map<string, Map<string, IndexedChunk>>();
    for (const [from, digests] of bySource) places.set(from, await deps.contentIndex.locate(from, digests));
    const batches = batchCopies(items, (node, sha256) => places.get(node)?.get(sha256), COPY_BATCH_SIZE);
    await mapLimit(batches, 8, (batch, n) =>
      deps.storage.putJson(deps.control, replicationBatchKey(prefix, n), batch),
    );
    const itemsKey = replicationItemsKey(prefix);
    await deps.storage.putJson(
      deps.control,
      itemsKey,
      batches.map((_, batch) => ({ migrationId: m.id, prefix, batch })),
    );

    const set: (readonly [readonly string[], unknown])[] = [];
    for (const leg of openLegs) {
      if (!leg?.cacheNodeId) continue;
      const stats = plan.perTarget.get(leg.cacheNodeId);
      const total = stats?.total ?? { chunks: 0, bytes: 0 };
      const todo = stats?.toCopy ?? { chunks: 0, bytes: 0 };
      set.push(
        [['legs', leg.dataCenterId, 'chunksToReplicate'], total.chunks],
        [['legs', leg.dataCenterId, 'bytesToReplicate'], total.bytes],
        // What the destination node already held counts as replicated.
        [['legs', leg.dataCenterId, 'chunksReplicated'], total.chunks - todo.chunks],
        [['legs', leg.dataCenterId, 'bytesReplicated'], total.bytes - todo.bytes],
      );
      if (todo.chunks > 0) set.push([['legs', leg.dataCenterId, 'status'], 'REPLICATING']);
    }
    const copies = items.filter((i) => !i.verify).length;
    const message =
      copies === 0
        ? 'every destination cache node already holds the image'
        : targets.map((t) => `${t}: ${plan.perTarget.get(t)?.toCopy.chunks ?? 0} chunks to copy`).join('; ') +
          ` (${batches.length} batches)`;
    await deps.migrations.update(
      m.id,
      { set, ...(copies > 0 ? { status: 'REPLICATING' as const } : {}) },
      { history: { event: 'replication-planned', message } },
    );
    return { bucket: deps.control.bucket, itemsKey, batches: batches.length, copies };
  },
);
