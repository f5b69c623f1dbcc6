// Chunk repair for destination agents: a chunk that failed verification is read back at the destination's cache
// node (its range of the pack, decoded and hashed); a corrupt (or lost) copy is deleted, dropped from the content
// index and copied again from the nearest cache node whose copy reads back intact. A corrupted chunk is never
// served again once found. Copies move whole objects: repairing one chunk of a pack brings the pack's other chunks
// back too, and they are indexed with it; a corrupt pack is deleted whole, and its other entries are found missing
// by the next use that reads them (a download's repair, a copy batch, `cache verify`) and healed the same way.

import * as api from '../../../protocol/api/repair.ts';
import { objectKeyOf } from '../../../protocol/chunk-key.ts';
import { isZeroChunk } from '../../../protocol/manifest.ts';
import { PackFormatError } from '../../../protocol/pack.ts';
import { bucketRef } from '../../aws/cache-nodes.ts';
import type { IndexedChunk } from '../../aws/content-index.ts';
import { conflict, invalid } from '../../domain/errors.ts';
import { byDistance } from '../../domain/geo.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { cachedManifest, migrationFor, requireActive, URL_TTL_SECONDS } from './agent-common.ts';
import { partOf } from './agent-destination.ts';

export function agentRepairRoutes(deps: ApiDeps) {
  const { storage, contentIndex } = deps;

  /**
   * The entries to index at `node` once `copied` (an object just copied there and read back intact) is there: for a
   * pack, every entry of its table of contents that the node does not already index in another object (those stay
   * as they are: repointing them would leave their object's bytes counted nowhere); for a chunk stored alone, the
   * chunk. An unreadable table of contents indexes the one chunk that was checked.
   */
  const entriesToIndex = async (
    node: Parameters<typeof bucketRef>[0] & { readonly id: string },
    copied: IndexedChunk,
  ): Promise<IndexedChunk[]> => {
    const { pack } = copied;
    if (pack === undefined) return [{ sha256: copied.sha256, length: copied.length }];
    let toc: IndexedChunk[] | undefined;
    try {
      toc = await storage.packToc(bucketRef(node), pack);
    } catch (err) {
      if (!(err instanceof PackFormatError)) throw err;
    }
    if (!toc?.some((e) => e.sha256 === copied.sha256)) return [copied];
    const indexed = await contentIndex.locate(
      node.id,
      toc.map((e) => e.sha256),
    );
    return toc.filter((e) => {
      const there = indexed.get(e.sha256);
      return e.sha256 === copied.sha256 || there === undefined || there.pack === pack;
    });
  };

  return router().openapi(api.repairChunk, async (c) => {
    const { migrationId, dataCenterId } = c.req.valid('param');
    const { sha256 } = c.req.valid('json');
    const m = await migrationFor(deps, c.get('principal'), migrationId, {
      role: 'destination',
      dataCenterId,
    });
    requireActive(m);
    const leg = m.legs[dataCenterId];
    if (!leg || leg.local || leg.status !== 'DOWNLOADING' || !leg.cacheNodeId) {
      throw conflict(
        `destination ${dataCenterId} of ${m.id} is not downloading (leg ${leg?.local ? 'local' : (leg?.status ?? 'unknown')})`,
        { status: leg?.status },
      );
    }
    const manifest = await cachedManifest(deps, m.id);
    const chunk = manifest.chunks.find((x) => x.sha256 === sha256 && !isZeroChunk(x.sha256, x.length));
    if (!chunk) throw invalid('sha256', `is not a chunk of the image of ${m.id}`);
    const { length } = chunk;

    const nodes = await deps.registry.allCacheNodes();
    const target = nodes.find((n) => n.id === leg.cacheNodeId);
    if (!target) throw conflict(`cache node ${leg.cacheNodeId} is no longer registered`);
    /** Where a node's index says the chunk is; unindexed: where it was stored before packs (alone, raw). */
    const entryAt = async (nodeId: string): Promise<IndexedChunk | undefined> =>
      (await contentIndex.locate(nodeId, [sha256])).get(sha256);

    // What the agent was sent to (the plan signs the entry's object, or the key before packs when unindexed).
    const before: IndexedChunk = (await entryAt(target.id)) ?? { sha256, length };
    const signed = async (entry: IndexedChunk, status: 'intact' | 'repaired', repairedFrom?: string) => {
      // Whatever the agent got may sit in the CDN's cache: drop it there too (and a cached refusal of the object
      // the chunk is in now).
      const keys = new Set([objectKeyOf(before), objectKeyOf(entry)]);
      for (const key of keys) await deps.edgeCache.invalidate(target.id, key);
      const expiresAt = new Date(Date.now() + URL_TTL_SECONDS * 1000);
      const url = await deps.edgeSigner.sign(target.id, objectKeyOf(entry), expiresAt);
      return c.json(
        {
          sha256,
          cacheNodeId: target.id,
          status,
          ...(repairedFrom ? { repairedFrom } : {}),
          url,
          ...(entry.pack !== undefined ? { part: partOf(entry) } : {}),
          expiresAt: expiresAt.toISOString(),
        },
        200,
      );
    };

    const here = await storage.inspectEntry(bucketRef(target), before);
    // Intact where it is: the bytes were damaged on the way to the agent, not in storage.
    if (here === 'intact') return signed(before, 'intact');
    const damaged: string[] = [`${target.id} (${here})`];
    // A pack goes whole: its other entries there are found missing when next read, and copied again.
    if (here === 'corrupt') await storage.deleteObject(bucketRef(target), before);
    await contentIndex.remove(target.id, sha256);

    // Other holders, nearest first; down nodes cannot serve copies.
    const others = nodes.filter((n) => n.id !== target.id && n.status !== 'down');
    const holders =
      (
        await contentIndex.holders(
          [sha256],
          others.map((n) => n.id),
        )
      ).get(sha256) ?? new Set();
    const candidates = byDistance(
      target.location,
      others.filter((n) => holders.has(n.id)),
    ).map((x) => x.node);
    for (const from of candidates) {
      const source = await entryAt(from.id);
      // Dropped there since holders() looked (evicted, or found damaged by another repair).
      if (!source) continue;
      const state = await storage.inspectEntry(bucketRef(from), source);
      if (state !== 'intact') {
        // A bad copy elsewhere would mislead the next migration: it goes too.
        if (state === 'corrupt') await storage.deleteObject(bucketRef(from), source);
        await contentIndex.remove(from.id, sha256);
        damaged.push(`${from.id} (${state})`);
        continue;
      }
      await storage.copyObject(bucketRef(from), bucketRef(target), source);
      // Verified by reading the copy back, as the agent will (the object has the same key and layout there).
      if ((await storage.inspectEntry(bucketRef(target), source)) !== 'intact') {
        await storage.deleteObject(bucketRef(target), source);
        damaged.push(`${target.id} (copy from ${from.id} read back wrong)`);
        continue;
      }
      const { refused } = await contentIndex.record(target.id, await entriesToIndex(target, source));
      if (refused.includes(sha256)) {
        // The collector is deleting it there this very moment (it reverts for a live migration): not usable yet.
        damaged.push(`${target.id} (being evicted)`);
        break;
      }
      await deps.migrations.addHistory(
        m.id,
        'chunk-repaired',
        `${dataCenterId}: chunk ${sha256.slice(0, 12)}… was ${here} at cache node ${target.id}; copied again from ${from.id}`,
      );
      return signed(source, 'repaired', from.id);
    }
    const message =
      `chunk ${sha256} (offset ${chunk.offset}) is ${here} at cache node ${target.id} and no cache node holds an ` +
      `intact copy (${damaged.join(', ')}): damaged copies were deleted; retry the migration to upload it again`;
    await deps.migrations.addHistory(m.id, 'chunk-unrepairable', `${dataCenterId}: ${message}`);
    throw conflict(message, { sha256, damaged });
  });
}
