// Source agent routes: manifest upload, the chunks to upload, presigned pack PUTs, verification of stored packs
// (source-upload.ts), completion.
import { createHash } from 'node:crypto';
import * as api from '../../../protocol/api/agent.ts';
import { formatBytes } from '../../../protocol/bytes.ts';
import { MAX_MANIFEST_CHUNKS, parseManifest } from '../../../protocol/manifest.ts';
import { bucketRef } from '../../aws/cache-nodes.ts';
import { taskFailed, taskSucceeded } from '../../aws/callbacks.ts';
import { distinctNonZeroChunks, zeroBytes } from '../../domain/chunks.ts';
import {
  manifestKey,
  type UploadPlanEntry,
  uploadCheckKey,
  uploadPlanKey,
} from '../../domain/control-keys.ts';
import { AppError, conflict, invalid } from '../../domain/errors.ts';
import type { MigrationRecord } from '../../domain/migration.ts';
import { wakeUploadWaiters } from '../../workflow/wake.ts';
import type { ApiDeps } from '../deps.ts';
import { router } from '../env.ts';
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
import { imageDigests, missingAtSource, verifyPacks } from './source-upload.ts';

/** 500,000 chunks of JSON stay under this. */
export const MAX_MANIFEST_BYTES = 96 * 1024 * 1024;
/** Time the completion check may spend before answering 202 "call again" (API Gateway allows 29 s). */
const VERIFY_BUDGET_MS = 20_000;
/** Time a pack report may spend reading packs back; packs not read by then are rejected, to be reported again. */
const REPORT_BUDGET_MS = 20_000;

export function agentSourceRoutes(deps: ApiDeps) {
  const { migrations, storage, contentIndex } = deps;

  async function sourceNode(m: MigrationRecord) {
    if (!m.sourceCacheNodeId) throw conflict(`migration ${m.id} has no source cache node yet`);
    return deps.registry.requireCacheNode(m.sourceCacheNodeId);
  }

  async function uploadPlan(m: MigrationRecord): Promise<UploadPlanEntry[]> {
    const plan = await storage.getJson<UploadPlanEntry[]>(deps.control, uploadPlanKey(m.id, m.attempt));
    if (!plan) throw conflict(`migration ${m.id} has no upload plan yet`);
    return plan;
  }

  return router()
    .openapi(api.createManifestUploadUrl, async (c) => {
      const { migrationId } = c.req.valid('param');
      const { sha256, size } = c.req.valid('json');
      if (size > MAX_MANIFEST_BYTES)
        throw invalid('size', `manifests are limited to ${MAX_MANIFEST_BYTES} bytes`);
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      await requireWork(deps, m, m.sourceDataCenterId, 'manifest');
      const put = await storage.presignPut(deps.control, manifestKey(m.id), sha256, size, URL_TTL_SECONDS);
      const expiresAt = new Date(Date.now() + URL_TTL_SECONDS * 1000).toISOString();
      return c.json({ url: put.url, method: 'PUT' as const, headers: put.headers, expiresAt }, 200);
    })
    .openapi(api.submitManifest, async (c) => {
      const { migrationId } = c.req.valid('param');
      const body = c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      const repeat = (image: NonNullable<MigrationRecord['image']>) => {
        if (image.manifestSha256 !== body.sha256)
          throw conflict(`migration ${m.id} already has a different manifest`);
        const { size, chunks, uniqueChunks, format } = image;
        return c.json({ size, chunks, uniqueChunks, format }, 200);
      };
      if (m.image) {
        await answerWaitingStep(deps, m, m.sourceDataCenterId, 'manifest');
        return repeat(m.image);
      }
      const work = await workUnlessTwinDone(
        deps,
        m,
        m.sourceDataCenterId,
        'manifest',
        async () => (await migrations.get(m.id))?.image !== undefined,
      );
      if (!work)
        return repeat((await migrations.require(m.id)).image as NonNullable<MigrationRecord['image']>);
      if (body.size > MAX_MANIFEST_BYTES)
        throw invalid('size', `manifests are limited to ${MAX_MANIFEST_BYTES} bytes`);
      let bytes: Uint8Array | undefined;
      try {
        bytes = await storage.getBytes(deps.control, manifestKey(m.id), MAX_MANIFEST_BYTES);
      } catch (err) {
        if (err instanceof RangeError) throw new AppError('limit', err.message);
        throw err;
      }
      if (!bytes) throw conflict('no manifest was uploaded: PUT it to the URL from manifest-url first');
      if (bytes.length !== body.size)
        throw invalid('size', `the uploaded manifest is ${bytes.length} bytes, not ${body.size}`);
      const digest = createHash('sha256').update(bytes).digest('hex');
      if (digest !== body.sha256) throw invalid('sha256', `the uploaded manifest hashes to ${digest}`);
      const parsed = parseManifest(bytes);
      if (!parsed.ok) {
        const issues = parsed.issues.map((i) => ({
          field: `manifest${i.field ? `.${i.field}` : ''}`,
          reason: i.reason,
        }));
        throw new AppError('validation', parsed.error, { issues });
      }
      const manifest = parsed.manifest;
      if (manifest.chunks.length > MAX_MANIFEST_CHUNKS)
        throw invalid('manifest.chunks', `over ${MAX_MANIFEST_CHUNKS} chunks`);
      const image = {
        size: manifest.size,
        sha256: manifest.sha256,
        format: manifest.format,
        chunks: manifest.chunks.length,
        uniqueChunks: new Set(manifest.chunks.map((x) => x.sha256)).size,
        zeroBytes: zeroBytes(manifest),
        manifestSha256: digest,
      };
      const accepted = {
        size: image.size,
        chunks: image.chunks,
        uniqueChunks: image.uniqueChunks,
        format: image.format,
      };
      // The same manifest submitted twice at once is recorded once; the twin answers as to a repeat.
      const recorded = await byThisCall(
        migrations.update(
          m.id,
          { set: [[['image'], image]] },
          {
            history: {
              event: 'manifest',
              message: `${image.format} image of ${image.size} bytes in ${image.chunks} chunks (${image.uniqueChunks} distinct, ${distinctNonZeroChunks(manifest).length} non-zero)`,
            },
            expect: [[['image'], undefined]],
          },
        ),
        async () => (await migrations.get(m.id))?.image?.manifestSha256 === digest,
      );
      if (!recorded) return c.json(accepted, 200);
      await deps.mapping.setFormat(
        m.id,
        [{ status: 'SRC', dataCenterId: m.sourceDataCenterId }],
        image.format,
      );
      if ((await taskSucceeded(deps.sfn, work.taskToken)) === 'stale') {
        await migrations.deleteWork(work);
        throw conflict('the workflow stopped waiting for this manifest; it will ask again');
      }
      await migrations.deleteWork(work);
      return c.json(accepted, 200);
    })
    .openapi(api.listUploadChunks, async (c) => {
      const { migrationId } = c.req.valid('param');
      const { limit, cursor } = c.req.valid('query');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      await requireWork(deps, m, m.sourceDataCenterId, 'upload');
      const [plan, node] = await Promise.all([uploadPlan(m), sourceNode(m)]);
      const start = positionCursor(cursor, plan.length);
      const slice = plan.slice(start, start + limit);
      // Skip what is already stored and verified: a restarted agent resumes where it stopped.
      const held = await contentIndex.holders(
        slice.map((e) => e.sha256),
        [node.id],
      );
      const items = slice
        .filter((e) => !held.has(e.sha256))
        .map(({ sha256, offset, length }) => ({ sha256, offset, length }));
      const next = start + slice.length;
      return c.json({ items, ...(next < plan.length ? { nextCursor: String(next) } : {}) }, 200);
    })
    .openapi(api.createPackUploadUrl, async (c) => {
      const { migrationId } = c.req.valid('param');
      const { sha256, size } = c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      await requireWork(deps, m, m.sourceDataCenterId, 'upload');
      const node = await sourceNode(m);
      const put = await storage.presignPackPut(bucketRef(node), sha256, size, URL_TTL_SECONDS);
      const expiresAt = new Date(Date.now() + URL_TTL_SECONDS * 1000).toISOString();
      return c.json({ url: put.url, method: 'PUT' as const, headers: put.headers, expiresAt }, 200);
    })
    .openapi(api.reportStoredPacks, async (c) => {
      const { migrationId } = c.req.valid('param');
      const { packs } = c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      const [manifest, node] = await Promise.all([cachedManifest(deps, m.id), sourceNode(m)]);
      const { wireBytes, ...report } = await verifyPacks(
        deps,
        node,
        packs,
        imageDigests(manifest),
        Date.now() + REPORT_BUDGET_MS,
      );
      if (wireBytes > 0) {
        // Statistics only: a lost increment must not fail a report whose chunks are indexed.
        await migrations
          .update(m.id, { increment: [[['upload', 'wireBytesDone'], wireBytes]] })
          .catch(() => {});
      }
      return c.json(report, 200);
    })
    .openapi(api.failSource, async (c) => {
      const { migrationId } = c.req.valid('param');
      const { reason } = c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      const works = (
        await Promise.all([
          migrations.getWork(m.sourceDataCenterId, m.id, 'manifest'),
          migrations.getWork(m.sourceDataCenterId, m.id, 'upload'),
          migrations.getWork(m.sourceDataCenterId, m.id, 'release'),
        ])
      ).filter((w) => w !== undefined);
      if (works.length === 0)
        throw conflict(`migration ${m.id} is not waiting for its source (status ${m.status})`);
      for (const work of works) {
        await taskFailed(deps.sfn, work.taskToken, 'SourceFailed', reason);
        await migrations.deleteWork(work);
      }
      return c.json({ status: 'failed' as const }, 200);
    })
    .openapi(api.releaseSource, async (c) => {
      const { migrationId } = c.req.valid('param');
      const { hook } = c.req.valid('json');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      if (m.sourceReleased) {
        await answerWaitingStep(deps, m, m.sourceDataCenterId, 'release');
        return c.json({ status: 'released' as const }, 200);
      }
      requireActive(m);
      const work = await workUnlessTwinDone(
        deps,
        m,
        m.sourceDataCenterId,
        'release',
        async () => (await migrations.get(m.id))?.sourceReleased === true,
      );
      if (!work) return c.json({ status: 'released' as const }, 200);
      // Reported twice at once, the release is recorded once; the twin answers as to a repeat.
      const recorded = await byThisCall(
        migrations.update(
          m.id,
          { set: [[['sourceReleased'], true]] },
          {
            history: {
              event: 'source-released',
              message:
                hook === 'ran'
                  ? 'the source agent ran its on-migrated hook'
                  : hook === 'skipped'
                    ? 'the source agent did not run its on-migrated hook: the image was handed over in place, the hook would act on the delivered image'
                    : 'the source agent has no on-migrated hook',
            },
            expectNot: [[['sourceReleased'], true]],
          },
        ),
        async () => (await migrations.get(m.id))?.sourceReleased === true,
      );
      if (!recorded) return c.json({ status: 'released' as const }, 200);
      await taskSucceeded(deps.sfn, work.taskToken);
      await migrations.deleteWork(work);
      return c.json({ status: 'released' as const }, 200);
    })
    .openapi(api.completeUpload, async (c) => {
      const { migrationId } = c.req.valid('param');
      const m = await migrationFor(deps, c.get('principal'), migrationId, { role: 'source' });
      requireActive(m);
      const work = await migrations.getWork(m.sourceDataCenterId, m.id, 'upload');
      if (!work) {
        if (['REPLICATING', 'DOWNLOADING'].includes(m.status)) {
          return c.json({ status: 'complete' as const, verifiedChunks: m.upload.chunksTotal }, 200);
        }
        throw conflict(`migration ${m.id} is not waiting for an upload (status ${m.status})`, {
          status: m.status,
        });
      }
      const [plan, node] = await Promise.all([uploadPlan(m), sourceNode(m)]);
      const { missing, unchecked } = await missingAtSource(
        deps,
        node,
        plan,
        uploadCheckKey(m.id, m.attempt, work.taskToken),
        Date.now() + VERIFY_BUDGET_MS,
      );
      if (missing.length > 0) {
        return c.json(
          {
            error: {
              code: 'Conflict' as const,
              message:
                `${unchecked > 0 ? 'at least ' : ''}${missing.length} chunks are not stored (or not intact) at ` +
                `cache node ${node.id}: upload them again`,
              missing: missing.slice(0, 1000).map((e) => e.sha256),
            },
          },
          409,
        );
      }
      if (unchecked > 0) return c.json({ status: 'verifying' as const, remaining: unchecked }, 202);
      await migrations.update(m.id, {
        set: [
          [['upload', 'chunksDone'], m.upload.chunksTotal],
          [['upload', 'bytesDone'], m.upload.bytesTotal],
        ],
      });
      if ((await taskSucceeded(deps.sfn, work.taskToken)) === 'stale') {
        await migrations.deleteWork(work);
        throw conflict('the workflow stopped waiting for this upload; it will ask again');
      }
      await migrations.deleteWork(work);
      await migrations.addHistory(
        m.id,
        'uploaded',
        `all ${plan.length} chunks verified at cache node ${node.id}` +
          (m.upload.wireBytesDone
            ? ` (${formatBytes(m.upload.bytesTotal)} of chunks sent as ${formatBytes(m.upload.wireBytesDone)} of packs)`
            : ''),
      );
      // Migrations that awaited chunks this one uploaded look again now.
      await wakeUploadWaiters(deps, m.id);
      return c.json({ status: 'complete' as const, verifiedChunks: plan.length }, 200);
    });
}
