// CMN content routing: for every destination cache node, the chunks it lacks, each copied from the nearest
// node that holds it. Batches go to the control bucket; the state machine maps over their numbers.

import { distinctNonZeroChunks } from '../domain/chunks.ts';
import { mapLimit } from '../domain/concurrency.ts';
import { type CopyItem, replicationBatchKey, replicationPrefix } from '../domain/control-keys.ts';
import { byDistance } from '../domain/geo.ts';
import { loadManifest } from './manifest.ts';
import { TaskFailure, task } from './task.ts';

export const COPY_BATCH_SIZE = 250;

export interface PlanReplicationOutput {
  readonly prefix: string;
  readonly batches: number[];
  readonly copies: number;
}

export const handler = task(async (deps, event: { migrationId: string }): Promise<PlanReplicationOutput> => {
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

  const items: CopyItem[] = [];
  const perTarget = new Map<string, { chunks: number; bytes: number }>();
  for (const to of targets) {
    const target = nodes.find((n) => n.id === to);
    if (!target)
      throw new TaskFailure('CacheNodeGone', `destination cache node ${to} is down or no longer registered`);
    const totals = { chunks: 0, bytes: 0 };
    for (const c of chunks) {
      const held = holders.get(c.sha256);
      totals.chunks++;
      totals.bytes += c.length;
      if (held?.has(to)) continue;
      const sources = nodes.filter((n) => held?.has(n.id));
      const nearest = byDistance(target.location, sources)[0];
      if (!nearest)
        throw new TaskFailure('ChunkNotCached', `chunk ${c.sha256} is held by no usable cache node`);
      items.push({ sha256: c.sha256, length: c.length, from: nearest.node.id, to });
    }
    perTarget.set(to, totals);
  }

  const prefix = replicationPrefix(m.id, m.attempt);
  const batches: CopyItem[][] = [];
  for (let i = 0; i < items.length; i += COPY_BATCH_SIZE) batches.push(items.slice(i, i + COPY_BATCH_SIZE));
  await mapLimit(batches, 8, (batch, n) =>
    deps.storage.putJson(deps.control, replicationBatchKey(prefix, n), batch),
  );

  const pending = new Map<string, { chunks: number; bytes: number }>();
  for (const it of items) {
    const p = pending.get(it.to) ?? { chunks: 0, bytes: 0 };
    p.chunks++;
    p.bytes += it.length;
    pending.set(it.to, p);
  }
  const set: (readonly [readonly string[], unknown])[] = [];
  for (const leg of openLegs) {
    if (!leg?.cacheNodeId) continue;
    const total = perTarget.get(leg.cacheNodeId) ?? { chunks: 0, bytes: 0 };
    const todo = pending.get(leg.cacheNodeId) ?? { chunks: 0, bytes: 0 };
    set.push(
      [['legs', leg.dataCenterId, 'chunksToReplicate'], total.chunks],
      [['legs', leg.dataCenterId, 'bytesToReplicate'], total.bytes],
      // What the destination node already held counts as replicated.
      [['legs', leg.dataCenterId, 'chunksReplicated'], total.chunks - todo.chunks],
      [['legs', leg.dataCenterId, 'bytesReplicated'], total.bytes - todo.bytes],
    );
    if (todo.chunks > 0) set.push([['legs', leg.dataCenterId, 'status'], 'REPLICATING']);
  }
  const message =
    items.length === 0
      ? 'every destination cache node already holds the image'
      : targets.map((t) => `${t}: ${pending.get(t)?.chunks ?? 0} chunks to copy`).join('; ') +
        ` (${batches.length} batches)`;
  await deps.migrations.update(
    m.id,
    { set, ...(items.length > 0 ? { status: 'REPLICATING' as const } : {}) },
    { history: { event: 'replication-planned', message } },
  );
  return { prefix, batches: batches.map((_, n) => n), copies: items.length };
});
