// Chunk repair for destination agents: a chunk that failed verification is read back at the destination's cache
// node and hashed; a corrupt (or lost) copy is deleted, dropped from the content index and copied again from the
// nearest cache node whose copy reads back intact. A corrupted chunk is never served again once found.

import * as api from '../../../protocol/api/repair.ts';
import { chunkKey } from '../../../protocol/chunk-key.ts';
import { isZeroChunk } from '../../../protocol/manifest.ts';
import { bucketRef } from '../../aws/cache-nodes.ts';
import { conflict, invalid } from '../../domain/errors.ts';
import { byDistance } from '../../domain/geo.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { cachedManifest, migrationFor, requireActive, URL_TTL_SECONDS } from './agent-common.ts';

export function agentRepairRoutes(deps: ApiDeps) {
  const { storage, contentIndex } = deps;

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
    const signed = async (status: 'intact' | 'repaired', repairedFrom?: string) => {
      // Whatever the agent got may sit in the CDN's cache: drop it there too.
      await deps.edgeCache.invalidate(target.id, chunkKey(sha256));
      const expiresAt = new Date(Date.now() + URL_TTL_SECONDS * 1000);
      const url = await deps.edgeSigner.sign(target.id, chunkKey(sha256), expiresAt);
      return c.json(
        {
          sha256,
          cacheNodeId: target.id,
          status,
          ...(repairedFrom ? { repairedFrom } : {}),
          url,
          expiresAt: expiresAt.toISOString(),
        },
        200,
      );
    };

    const here = await storage.inspectChunk(bucketRef(target), sha256, length);
    // Intact where it is: the bytes were damaged on the way to the agent, not in storage.
    if (here === 'intact') return signed('intact');
    const damaged: string[] = [`${target.id} (${here})`];
    if (here === 'corrupt') await storage.deleteChunk(bucketRef(target), sha256);
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
      const state = await storage.inspectChunk(bucketRef(from), sha256, length);
      if (state !== 'intact') {
        // A bad copy elsewhere would mislead the next migration: it goes too.
        if (state === 'corrupt') await storage.deleteChunk(bucketRef(from), sha256);
        await contentIndex.remove(from.id, sha256);
        damaged.push(`${from.id} (${state})`);
        continue;
      }
      await storage.copyChunk(bucketRef(from), bucketRef(target), sha256);
      // Verified by reading the copy back, as the agent will.
      if ((await storage.inspectChunk(bucketRef(target), sha256, length)) !== 'intact') {
        await storage.deleteChunk(bucketRef(target), sha256);
        damaged.push(`${target.id} (copy from ${from.id} read back wrong)`);
        continue;
      }
      if ((await contentIndex.record(target.id, [{ sha256, length }])).refused.length > 0) {
        // The collector is deleting it there this very moment (it reverts for a live migration): not usable yet.
        damaged.push(`${target.id} (being evicted)`);
        break;
      }
      await deps.migrations.addHistory(
        m.id,
        'chunk-repaired',
        `${dataCenterId}: chunk ${sha256.slice(0, 12)}… was ${here} at cache node ${target.id}; copied again from ${from.id}`,
      );
      return signed('repaired', from.id);
    }
    const message =
      `chunk ${sha256} (offset ${chunk.offset}) is ${here} at cache node ${target.id} and no cache node holds an ` +
      `intact copy (${damaged.join(', ')}): damaged copies were deleted; retry the migration to upload it again`;
    await deps.migrations.addHistory(m.id, 'chunk-unrepairable', `${dataCenterId}: ${message}`);
    throw conflict(message, { sha256, damaged });
  });
}
