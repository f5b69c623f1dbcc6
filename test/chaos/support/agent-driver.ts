// Plays a data center's agent by hand with the ApiClient, exactly the calls cli/agent/*.ts makes, so a test can
// stop a migration at any step of the protocol (waiting for the manifest, the upload, a download, the release).
import { createHash, randomBytes } from 'node:crypto';
import { SQSClient } from '@aws-sdk/client-sqs';
import { WorkQueueListener } from '../../../cli/agent/work-queue.ts';
import type { ApiClient } from '../../../cli/client.ts';
import {
  completeDestination,
  completeUpload,
  createManifestUploadUrl,
  createPackUploadUrl,
  getDownloadPlan,
  getWork,
  listUploadChunks,
  type PlanChunk,
  releaseSource,
  reportStoredPacks,
  submitManifest,
  type UploadChunk,
  type WorkItem,
} from '../../../protocol/api/agent.ts';
import { type Migration, TERMINAL_STATUSES } from '../../../protocol/api/migrations.ts';
import { CHUNKING_ALGORITHM } from '../../../protocol/chunker.ts';
import { type Manifest, serializeManifest } from '../../../protocol/manifest.ts';
import {
  type BuiltPack,
  encodeChunk,
  openChunk,
  PACK_TARGET_BYTES,
  PackBuilder,
} from '../../../protocol/pack.ts';
import type { TestCloud } from '../../support/local-cloud.ts';
import { getOne, startMigration, waitForMigration } from '../../support/migrations.ts';

/** Small chunking parameters, so a test image is a few KiB (the server checks ranges, not the cut points). */
export const TINY_CHUNKING = {
  algorithm: CHUNKING_ALGORITHM,
  minSize: 256,
  avgSize: 1024,
  maxSize: 4096,
} as const;

export interface TinyImage {
  readonly bytes: Buffer;
  readonly manifest: Manifest;
  /** The manifest file as the agent uploads it. */
  readonly file: string;
  readonly fileSha256: string;
}

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/** An image of random chunks (distinct content per call, so nothing is cached yet) and its manifest. */
export function tinyImage(lengths: readonly number[] = [1000, 2000, 1500]): TinyImage {
  const parts = lengths.map((n) => randomBytes(n));
  const bytes = Buffer.concat(parts);
  let offset = 0;
  const chunks = parts.map((p) => {
    const c = { offset, length: p.length, sha256: sha(p) };
    offset += p.length;
    return c;
  });
  const manifest: Manifest = {
    version: 1,
    format: 'raw',
    size: bytes.length,
    sha256: sha(bytes),
    chunking: TINY_CHUNKING,
    chunks,
  };
  const file = serializeManifest(manifest);
  return { bytes, manifest, file, fileSha256: sha(file) };
}

/**
 * Waits until the agent of `dataCenterId` has `action` work for `migrationId`, as an agent does: it looks at its
 * work, and between looks waits on its work queue (with the agent's own credentials) for a wake-up.
 */
export async function waitForWork(
  t: TestCloud,
  dataCenterId: string,
  migrationId: string,
  action: WorkItem['action'],
  timeoutMs = 60_000,
): Promise<WorkItem> {
  const agent = t.agent(dataCenterId);
  const env = t.cloud.agentEnvironment(dataCenterId);
  const sqs = (region: string) =>
    new SQSClient({
      region,
      endpoint: env['AWS_ENDPOINT_URL_SQS'] as string,
      credentials: {
        accessKeyId: env['AWS_ACCESS_KEY_ID'] as string,
        secretAccessKey: env['AWS_SECRET_ACCESS_KEY'] as string,
      },
    });
  const listening = new AbortController();
  const opened = await WorkQueueListener.open(agent, listening.signal, sqs);
  if (!('listener' in opened)) throw new Error(`no work queue for ${dataCenterId}: ${opened.reason}`);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const { body } = await agent.call<{ items: WorkItem[] }>(getWork, {});
      const hit = body.items.find((w) => w.migrationId === migrationId && w.action === action);
      if (hit) return hit;
      if (Date.now() > deadline) {
        throw new Error(`no ${action} work for ${migrationId}; work: ${JSON.stringify(body.items)}`);
      }
      // Another listener (a running agent) may take the wake-up: look again after a short wait regardless.
      await opened.listener.wait(2000, new AbortController().signal);
    }
  } finally {
    listening.abort();
  }
}

/** PUTs a manifest file to the presigned URL (as the source agent does) without submitting it. */
export async function putManifestFile(agent: ApiClient, migrationId: string, file: string | Buffer) {
  const fileSha256 = sha(file);
  const size = Buffer.byteLength(file);
  const target = await agent.call<{ url: string; headers: Record<string, string> }>(createManifestUploadUrl, {
    params: { migrationId },
    json: { sha256: fileSha256, size },
  });
  const res = await fetch(target.body.url, { method: 'PUT', headers: target.body.headers, body: file });
  if (!res.ok) throw new Error(`manifest PUT: ${res.status} ${await res.text()}`);
  return { sha256: fileSha256, size };
}

export async function sendManifest(agent: ApiClient, migrationId: string, image: TinyImage) {
  const ref = await putManifestFile(agent, migrationId, image.file);
  await agent.call(submitManifest, { params: { migrationId }, json: ref });
}

/** PUTs one pack to the URL the server presigns for it (as the source agent does) without reporting it. */
export async function putPack(agent: ApiClient, migrationId: string, pack: BuiltPack): Promise<void> {
  const target = await agent.call<{ url: string; headers: Record<string, string> }>(createPackUploadUrl, {
    params: { migrationId },
    json: { sha256: pack.sha256, size: pack.bytes.length },
  });
  const res = await fetch(target.body.url, { method: 'PUT', headers: target.body.headers, body: pack.bytes });
  if (!res.ok) throw new Error(`pack PUT: ${res.status} ${await res.text()}`);
}

/** The chunks the server asks for, encoded and grouped in packs in plan order, as the source agent builds them. */
export async function packsFor(image: TinyImage, chunks: readonly UploadChunk[]): Promise<BuiltPack[]> {
  const packs: BuiltPack[] = [];
  let builder = new PackBuilder();
  for (const c of chunks) {
    const { stored, encoding } = await encodeChunk(image.bytes.subarray(c.offset, c.offset + c.length));
    if (!builder.fits(stored.length)) {
      packs.push(builder.finish());
      builder = new PackBuilder();
    }
    builder.add(c.sha256, c.length, stored, encoding);
    if (builder.size >= PACK_TARGET_BYTES) {
      packs.push(builder.finish());
      builder = new PackBuilder();
    }
  }
  if (builder.count > 0) packs.push(builder.finish());
  return packs;
}

/** Uploads every chunk the server asks for, in packs, and reports them stored (without completing the upload). */
export async function storeAll(agent: ApiClient, migrationId: string, image: TinyImage): Promise<void> {
  let cursor: string | undefined;
  const wanted: UploadChunk[] = [];
  do {
    const page = await agent.call<{ items: UploadChunk[]; nextCursor?: string }>(listUploadChunks, {
      params: { migrationId },
      query: { limit: 200, ...(cursor ? { cursor } : {}) },
    });
    wanted.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor);
  const packs = await packsFor(image, wanted);
  for (const pack of packs) await putPack(agent, migrationId, pack);
  // At most 100 packs a report.
  for (let i = 0; i < packs.length; i += 100) {
    const report = await agent.call<{ rejected: { sha256: string; reason: string }[] }>(reportStoredPacks, {
      params: { migrationId },
      json: { packs: packs.slice(i, i + 100).map((p) => p.sha256) },
    });
    if (report.body.rejected.length > 0)
      throw new Error(`packs rejected: ${JSON.stringify(report.body.rejected)}`);
  }
}

/** Uploads every chunk the server asks for, reports them and completes the upload. */
export async function uploadAll(agent: ApiClient, migrationId: string, image: TinyImage): Promise<void> {
  await storeAll(agent, migrationId, image);
  for (;;) {
    const done = await agent.call<{ status: string }>(completeUpload, { params: { migrationId } });
    if (done.status === 200) return;
  }
}

/** Every page of a destination's download plan. */
export async function downloadPlan(
  agent: ApiClient,
  migrationId: string,
  dataCenterId: string,
): Promise<PlanChunk[]> {
  const items: PlanChunk[] = [];
  let cursor: string | undefined;
  do {
    const page = await agent.call<{ items: PlanChunk[]; nextCursor?: string }>(getDownloadPlan, {
      params: { migrationId, dataCenterId },
      query: cursor ? { cursor } : {},
    });
    items.push(...page.body.items);
    cursor = page.body.nextCursor;
  } while (cursor);
  return items;
}

/** Downloads every chunk through the edge, checks the image, and reports the destination complete. */
export async function downloadAndComplete(
  agent: ApiClient,
  migrationId: string,
  dataCenterId: string,
  image: TinyImage,
): Promise<void> {
  const plan = await downloadPlan(agent, migrationId, dataCenterId);
  const out = Buffer.alloc(image.bytes.length);
  for (const c of plan) {
    if (c.zero || !c.url) continue;
    Buffer.from(await fetchChunk(c)).copy(out, c.offset);
  }
  if (sha(out) !== image.manifest.sha256) throw new Error('downloaded image differs');
  await agent.call(completeDestination, {
    params: { migrationId, dataCenterId },
    json: { sha256: image.manifest.sha256 },
  });
}

/**
 * One chunk of a download plan through the edge: its byte range of a pack (decoded, digest checked) when the plan
 * names a part, else the whole object (the raw chunk).
 */
export async function fetchChunk(c: PlanChunk): Promise<Uint8Array> {
  if (!c.url) throw new Error(`chunk ${c.sha256} has no URL`);
  const part = c.part;
  const res = await fetch(
    c.url,
    part ? { headers: { range: `bytes=${part.offset}-${part.offset + part.length - 1}` } } : {},
  );
  if (!res.ok) throw new Error(`edge GET ${c.sha256}: ${res.status}`);
  const body = new Uint8Array(await res.arrayBuffer());
  const bytes = part
    ? await openChunk(body, { sha256: c.sha256, length: c.length, encoding: part.encoding })
    : sha(body) === c.sha256
      ? body
      : undefined;
  if (!bytes) throw new Error(`edge GET ${c.sha256}: not the chunk (${body.length} bytes)`);
  return bytes;
}

export async function release(agent: ApiClient, migrationId: string): Promise<void> {
  await agent.call(releaseSource, { params: { migrationId }, json: { hook: 'none' } });
}

/** Where a driven migration stops: it waits there for the agent (or the admin) until the test acts. */
export type Stage = 'manifest' | 'upload' | 'download' | 'release' | 'completed';

export interface Driven {
  readonly migration: Migration;
  readonly image: TinyImage;
  readonly from: string;
  readonly to: string;
}

/** Starts a migration `from` → `to` and plays both agents until it waits at `stage`. */
export async function migrationAt(
  t: TestCloud,
  stage: Stage,
  o: { from?: string; to?: string; vmId?: string; image?: TinyImage } = {},
): Promise<Driven> {
  const from = o.from ?? 'dc-gz';
  const to = o.to ?? 'dc-osa';
  const image = o.image ?? tinyImage();
  const m = await startMigration(t.admin, {
    imageId: 'tiny.img',
    from,
    to: [to],
    vmId: o.vmId ?? `vm-${randomBytes(4).toString('hex')}`,
  });
  const src = t.agent(from);
  const dst = t.agent(to);
  const done = async (): Promise<Driven> => ({ migration: await getOne(t.admin, m.id), image, from, to });
  await waitForWork(t, from, m.id, 'manifest');
  if (stage === 'manifest') return done();
  await sendManifest(src, m.id, image);
  await waitForWork(t, from, m.id, 'upload');
  if (stage === 'upload') return done();
  await uploadAll(src, m.id, image);
  await waitForWork(t, to, m.id, 'download');
  if (stage === 'download') return done();
  await downloadAndComplete(dst, m.id, to, image);
  await waitForWork(t, from, m.id, 'release');
  if (stage === 'release') return done();
  await release(src, m.id);
  await waitForMigration(t.admin, m.id, (x) => TERMINAL_STATUSES.includes(x.status));
  return done();
}
