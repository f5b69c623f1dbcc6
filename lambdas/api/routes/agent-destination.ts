// Agent routes: pending work, destination download plans (signed edge URLs: a range of a pack, or a chunk stored
// alone), completion or failure of a destination, and heartbeats with progress.
import * as api from '../../../protocol/api/agent.ts';
import { chunkKey, objectKeyOf } from '../../../protocol/chunk-key.ts';
import { isZeroChunk } from '../../../protocol/manifest.ts';
import { taskFailed, taskHeartbeat, taskSucceeded } from '../../aws/callbacks.ts';
import type { IndexedChunk } from '../../aws/content-index.ts';
import { MigrationTerminatedError } from '../../aws/migration-store.ts';
import { LONG_POLL_SECONDS } from '../../aws/work-queues.ts';
import { conflict, forbidden, invalid } from '../../domain/errors.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
import { type Principal, requireAdmin } from '../principal.ts';
import {
  answerWaitingStep,
  byThisCall,
  cachedManifest,
  migrationFor,
  positionCursor,
  requireActive,
  requireWork,
  URL_TTL_SECONDS,
  workUnlessTwinDone,
} from './agent-common.ts';

/** Where a packed entry's stored bytes are in its pack, as the agent fetches them (a range of the object). */
export function partOf(entry: IndexedChunk): api.StoredPart {
  return {
    offset: entry.offset ?? 0,
    length: entry.stored ?? entry.length,
    encoding: entry.encoding ?? 'raw',
  };
}

/** A long poll looks for work soon after the agent asks (work often follows its last report), then less often. */
/** A work item's waiting step gets at most one heartbeat per minute from its agent's looks. */
const WORK_HEARTBEAT_EVERY_MS = 60_000;

/** The data center whose work the caller asks about: an agent's own (naming another is 403), or one an admin names. */
function ownDataCenter(p: Principal, asked: string | undefined, onlyOwn: string): string {
  if (p.kind === 'agent') {
    if (asked !== undefined && asked !== p.dataCenterId)
      throw forbidden(`the agent of "${p.dataCenterId}" may ${onlyOwn}`);
    return p.dataCenterId;
  }
  requireAdmin(p);
  if (!asked) throw invalid('dataCenterId', 'an admin must name the data center');
  return asked;
}

export function agentDestinationRoutes(deps: ApiDeps) {
  const { migrations } = deps;

  return router()
    .openapi(api.getWork, async (c) => {
      const p = c.get('principal');
      const { dataCenterId: asked, agentVersion, qemuImg } = c.req.valid('query');
      const dc = ownDataCenter(p, asked, 'read only its own work');
      if (p.kind === 'agent' && agentVersion) {
        await deps.registry.recordAgent(dc, {
          version: agentVersion,
          ...(qemuImg ? { qemuImg } : {}),
          seenAt: new Date().toISOString(),
        });
      }
      const work = await migrations.listWork(dc);
      // The agent has seen its work: the steps waiting for it stay alive (HeartbeatSeconds) while it is queued.
      await Promise.all(
        work.map(async (w) => {
          if (await migrations.touchWork(w, WORK_HEARTBEAT_EVERY_MS))
            await taskHeartbeat(deps.sfn, w.taskToken);
        }),
      );
      const items = work.map((w) => {
        const { taskToken: _, seenAt: __, ...item } = w as typeof w & { seenAt?: number };
        return item;
      });
      return c.json({ items }, 200);
    })
    .openapi(api.openWorkQueue, async (c) => {
      const p = c.get('principal');
      const { dataCenterId: asked } = c.req.valid('query');
      const dc = ownDataCenter(p, asked, 'open only its own work queue');
      await deps.registry.requireDataCenter(dc);
      const queueUrl = await deps.workQueues.ensure(dc);
      return c.json({ queueUrl, region: deps.workQueues.region, waitSeconds: LONG_POLL_SECONDS }, 200);
    })
    .openapi(api.getDownloadPlan, async (c) => {
      const { migrationId, dataCenterId } = c.req.valid('param');
      const { limit, cursor } = c.req.valid('query');
      const m = await migrationFor(deps, c.get('principal'), migrationId, {
        role: 'destination',
        dataCenterId,
      });
      requireActive(m);
      const leg = m.legs[dataCenterId];
      if (leg?.local) {
        throw conflict(
          `destination ${dataCenterId} is the source data center: a local handover, nothing to download`,
        );
      }
      if (
        !leg ||
        (leg.status !== 'DOWNLOADING' && leg.status !== 'COMPLETED') ||
        !leg.cacheNodeId ||
        !m.image
      ) {
        throw conflict(
          `destination ${dataCenterId} of ${m.id} is not ready to download (leg ${leg?.status ?? 'unknown'})`,
          {
            status: leg?.status,
          },
        );
      }
      const manifest = await cachedManifest(deps, m.id);
      const start = positionCursor(cursor, manifest.chunks.length);
      const slice = manifest.chunks.slice(start, start + Math.min(limit, 1000));
      const expiresAt = new Date(Date.now() + URL_TTL_SECONDS * 1000);
      const node = leg.cacheNodeId;
      const data = slice.filter((chunk) => !isZeroChunk(chunk.sha256, chunk.length));
      const located = await deps.contentIndex.locate(
        node,
        data.map((chunk) => chunk.sha256),
      );
      // One signature per object on the page: the chunks of a pack share its URL, which lets the agent see which
      // ranges it can fetch together. A chunk not indexed at the node gets the key it had before packs; if nothing
      // is there the agent is refused and asks for a repair, which finds it elsewhere.
      const urls = new Map<string, Promise<string>>();
      const urlOf = (key: string) => {
        let url = urls.get(key);
        if (!url) {
          url = deps.edgeSigner.sign(node, key, expiresAt);
          urls.set(key, url);
        }
        return url;
      };
      const items = await Promise.all(
        slice.map(async (chunk, i) => {
          const zero = isZeroChunk(chunk.sha256, chunk.length);
          if (zero) return { index: start + i, ...chunk, zero };
          const entry = located.get(chunk.sha256);
          return {
            index: start + i,
            ...chunk,
            zero,
            url: await urlOf(entry ? objectKeyOf(entry) : chunkKey(chunk.sha256)),
            ...(entry?.pack !== undefined ? { part: partOf(entry) } : {}),
          };
        }),
      );
      const next = start + slice.length;
      return c.json(
        {
          image: {
            size: m.image.size,
            sha256: m.image.sha256,
            format: m.image.format,
            chunks: m.image.chunks,
          },
          targetFormat: leg.format ?? m.image.format,
          items,
          ...(next < manifest.chunks.length ? { nextCursor: String(next) } : {}),
          expiresAt: expiresAt.toISOString(),
        },
        200,
      );
    })
    .openapi(api.completeDestination, async (c) => {
      const { migrationId, dataCenterId } = c.req.valid('param');
      const { sha256, path, format, bytesReused, allocatedBytes, replaced, bytesFetched } =
        c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, {
        role: 'destination',
        dataCenterId,
      });
      const leg = m.legs[dataCenterId];
      // A repeat is answered like the first report only if it reports the same image.
      if (leg?.status === 'COMPLETED' && m.image && sha256 !== m.image.sha256) {
        throw invalid(
          'sha256',
          `the image received hashes to ${sha256}, but the source image is ${m.image.sha256}`,
        );
      }
      if (leg?.status === 'COMPLETED') {
        await answerWaitingStep(deps, m, dataCenterId, leg.local ? 'handover' : 'download');
        return c.json({ status: 'complete' as const }, 200);
      }
      requireActive(m);
      // A local handover needs no manifest; whenever there is one, the digest must match it.
      if (!leg?.local && !m.image) throw conflict(`migration ${m.id} has no image yet`);
      if (m.image && sha256 !== m.image.sha256) {
        throw invalid(
          'sha256',
          `the image received hashes to ${sha256}, but the source image is ${m.image.sha256}`,
        );
      }
      const completedByTwin = async () =>
        (await migrations.get(m.id))?.legs[dataCenterId]?.status === 'COMPLETED';
      const work = await workUnlessTwinDone(
        deps,
        m,
        dataCenterId,
        leg?.local ? 'handover' : 'download',
        completedByTwin,
      );
      if (!work) return c.json({ status: 'complete' as const }, 200);
      const recorded = await byThisCall(
        migrations.update(
          m.id,
          {
            set: [
              [['legs', dataCenterId, 'status'], 'COMPLETED'],
              [['legs', dataCenterId, 'completedAt'], new Date().toISOString()],
              ...(m.image && !leg?.local
                ? [
                    [['legs', dataCenterId, 'chunksDownloaded'], m.image.chunks] as const,
                    [
                      ['legs', dataCenterId, 'bytesDownloaded'],
                      Math.max(0, m.image.size - m.image.zeroBytes - (bytesReused ?? 0)),
                    ] as const,
                    [['legs', dataCenterId, 'bytesReusedAtDestination'], bytesReused ?? 0] as const,
                    ...(bytesFetched !== undefined
                      ? [[['legs', dataCenterId, 'wireBytesDownloaded'], bytesFetched] as const]
                      : []),
                  ]
                : []),
              ...(path ? [[['legs', dataCenterId, 'deliveredPath'], path] as const] : []),
              ...(format ? [[['legs', dataCenterId, 'deliveredFormat'], format] as const] : []),
              ...(allocatedBytes !== undefined
                ? [[['legs', dataCenterId, 'allocatedBytes'], allocatedBytes] as const]
                : []),
              ...(replaced ? [[['legs', dataCenterId, 'replaced'], true] as const] : []),
            ],
          },
          {
            history: {
              event: 'destination-completed',
              message:
                `${dataCenterId}: ${leg?.local ? 'handed over locally' : 'image verified'} (sha256 ${sha256.slice(0, 12)}…)` +
                `${format ? `, ${format} at ${path ?? 'its image store'}` : ''}` +
                `${replaced ? ` (replaced the file that was there)` : ''}, VM ready`,
            },
            // The same report twice at once completes the leg once; the second answers like a repeat.
            expectNot: [[['legs', dataCenterId, 'status'], 'COMPLETED']],
          },
        ),
        completedByTwin,
      );
      if (!recorded) return c.json({ status: 'complete' as const }, 200);
      if (format) await deps.mapping.setFormat(m.id, [{ status: 'DEST', dataCenterId }], format);
      await taskSucceeded(deps.sfn, work.taskToken);
      await migrations.deleteWork(work);
      return c.json({ status: 'complete' as const }, 200);
    })
    .openapi(api.failDestination, async (c) => {
      const { migrationId, dataCenterId } = c.req.valid('param');
      const { reason } = c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, {
        role: 'destination',
        dataCenterId,
      });
      requireActive(m);
      const work = await requireWork(
        deps,
        m,
        dataCenterId,
        m.legs[dataCenterId]?.local ? 'handover' : 'download',
      );
      await taskFailed(deps.sfn, work.taskToken, 'DestinationFailed', reason);
      await migrations.deleteWork(work);
      return c.json({ status: 'failed' as const }, 200);
    })
    .openapi(api.sendHeartbeat, async (c) => {
      const { migrationId } = c.req.valid('param');
      const hb = c.req.valid('json');
      const end =
        hb.role === 'source'
          ? ({ role: 'source' } as const)
          : ({ role: 'destination', dataCenterId: hb.dataCenterId } as const);
      const m = await migrationFor(deps, c.get('principal'), migrationId, end);
      if (hb.role === 'source' && hb.dataCenterId !== m.sourceDataCenterId) {
        throw invalid('dataCenterId', `the source of ${m.id} is ${m.sourceDataCenterId}`);
      }
      const set: (readonly [readonly string[], unknown])[] =
        hb.role === 'source'
          ? hb.phase === 'uploading'
            ? [
                [['upload', 'chunksDone'], hb.chunksDone],
                [['upload', 'bytesDone'], hb.bytesDone],
              ]
            : []
          : [
              [['legs', hb.dataCenterId, 'chunksDownloaded'], hb.chunksDone],
              [['legs', hb.dataCenterId, 'bytesDownloaded'], hb.bytesDone],
              ...(hb.wireBytesDone !== undefined
                ? [[['legs', hb.dataCenterId, 'wireBytesDownloaded'], hb.wireBytesDone] as const]
                : []),
            ];
      try {
        if (set.length > 0) await migrations.update(m.id, { set });
      } catch (err) {
        if (!(err instanceof MigrationTerminatedError)) throw err;
      }
      const action =
        hb.role === 'destination'
          ? m.legs[hb.dataCenterId]?.local
            ? 'handover'
            : 'download'
          : hb.phase === 'chunking'
            ? 'manifest'
            : 'upload';
      const work = await migrations.getWork(hb.dataCenterId, m.id, action);
      if (work) await taskHeartbeat(deps.sfn, work.taskToken);
      const current = await migrations.require(m.id);
      return c.json({ status: current.status }, 200);
    });
}
