// The source agent's upload in packs (cli/agent/source.ts, pack-upload.ts) against a fake API and a real HTTP server
// for the presigned PUTs: chunks go compressed, in image order, in packs under MAX_PACK_BYTES, several packs at once;
// only chunks of verified packs are journaled, so a rejected pack and a chunk the server finds missing go again; an
// expired URL is asked for again; a restarted agent skips what it sent; an image that changed fails the job.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type AgentOptions, JobFailure, paths } from '../../../cli/agent/context.ts';
import { uploadMissing } from '../../../cli/agent/source.ts';
import type { ApiClient, CallInput } from '../../../cli/client.ts';
import {
  completeUpload,
  createPackUploadUrl,
  listUploadChunks,
  reportStoredPacks,
  sendHeartbeat,
  type UploadChunk,
  type WorkItem,
} from '../../../protocol/api/agent.ts';
import { resolveChunking } from '../../../protocol/chunker.ts';
import { buildManifest } from '../../../protocol/manifest.ts';
import { MAX_PACK_BYTES, type PackEntry, verifyPack } from '../../../protocol/pack.ts';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** Compresses well: one random block repeated. */
const compressible = (n: number) => Buffer.alloc(n, randomBytes(4096));

/** The API's side of the upload, as the server keeps it: the plan, the packs PUT, the chunks indexed. */
class FakeSource {
  readonly packs = new Map<string, Buffer>();
  /** Chunk → where it is indexed at the source node. */
  readonly indexed = new Map<string, PackEntry>();
  readonly calls: { route: string; json?: unknown }[] = [];
  /** PUTs at once, now and at most. */
  putsNow = 0;
  putsMax = 0;
  /** Scripted faults. */
  expireNextPuts = 0;
  rejectNextReports = 0;
  readonly rejectedPacks: string[] = [];
  verifyingAnswers = 0;
  putDelayMs = 0;
  url = '';
  private readonly server: Server;

  constructor(readonly plan: UploadChunk[]) {
    this.server = createServer((req, res) => this.put(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** S3's part: the body must hash to the pack's name (its checksum), or it is refused. */
  private put(req: IncomingMessage, res: ServerResponse): void {
    const pieces: Buffer[] = [];
    this.putsNow++;
    this.putsMax = Math.max(this.putsMax, this.putsNow);
    req.on('data', (p: Buffer) => pieces.push(p));
    req.on('end', async () => {
      await new Promise((r) => setTimeout(r, this.putDelayMs));
      this.putsNow--;
      const name = (req.url ?? '').split('/').pop() ?? '';
      const body = Buffer.concat(pieces);
      if (this.expireNextPuts > 0) {
        this.expireNextPuts--;
        res
          .writeHead(403)
          .end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
        return;
      }
      if (sha(body) !== name) {
        res.writeHead(400).end('<Error><Code>BadDigest</Code></Error>');
        return;
      }
      this.packs.set(name, body);
      res.writeHead(200).end();
    });
  }

  readonly client = {
    call: async (route: unknown, input: CallInput = {}, accept: number[] = []) => {
      const answer = await this.answer(route, input);
      if (answer.status >= 300 && !accept.includes(answer.status))
        throw new Error(`HTTP ${answer.status}: ${JSON.stringify(answer.body)}`);
      return answer;
    },
  } as unknown as ApiClient;

  private async answer(route: unknown, input: CallInput): Promise<{ status: number; body: unknown }> {
    const name = (route as { operationId: string }).operationId;
    this.calls.push({ route: name, json: input.json });
    if (route === listUploadChunks) {
      const start = Number(input.query?.['cursor'] ?? 0);
      const limit = Number(input.query?.['limit'] ?? 100);
      const page = this.plan.slice(start, start + limit);
      const next = start + page.length;
      return {
        status: 200,
        body: {
          items: page.filter((c) => !this.indexed.has(c.sha256)),
          ...(next < this.plan.length ? { nextCursor: String(next) } : {}),
        },
      };
    }
    if (route === createPackUploadUrl) {
      const { sha256 } = input.json as { sha256: string };
      return {
        status: 200,
        body: { url: `${this.url}/chunks/p/${sha256}`, method: 'PUT', headers: {}, expiresAt: '' },
      };
    }
    if (route === reportStoredPacks) {
      const { packs } = input.json as { packs: string[] };
      const rejected: { sha256: string; reason: string }[] = [];
      let chunks = 0;
      for (const p of packs) {
        const bytes = this.packs.get(p);
        if (!bytes) {
          rejected.push({ sha256: p, reason: 'not stored' });
          continue;
        }
        const { intact, corrupt } = await verifyPack(p, bytes);
        if (this.rejectNextReports > 0 || corrupt.length > 0) {
          this.rejectNextReports--;
          this.rejectedPacks.push(p);
          rejected.push({ sha256: p, reason: 'a chunk does not decode to its digest' });
          continue;
        }
        for (const e of intact) this.indexed.set(e.sha256, e);
        chunks += intact.length;
      }
      return { status: 200, body: { verified: packs.length - rejected.length, chunks, rejected } };
    }
    if (route === completeUpload) {
      if (this.verifyingAnswers > 0) {
        this.verifyingAnswers--;
        return { status: 202, body: { status: 'verifying', remaining: 1 } };
      }
      const missing = this.plan.filter((c) => !this.indexed.has(c.sha256)).map((c) => c.sha256);
      if (missing.length > 0)
        return { status: 409, body: { error: { code: 'Conflict', message: 'missing', missing } } };
      return { status: 200, body: { status: 'complete', verifiedChunks: this.plan.length } };
    }
    if (route === sendHeartbeat) return { status: 200, body: { status: 'UPLOADING' } };
    throw new Error(`unexpected call ${name}`);
  }

  /** The calls made to one route, in order. */
  callsTo(route: { operationId: string }) {
    return this.calls.filter((c) => c.route === route.operationId);
  }
}

interface Image {
  readonly dir: string;
  readonly path: string;
  readonly bytes: Buffer;
  readonly plan: UploadChunk[];
}

const work = (migrationId: string): WorkItem => ({
  migrationId,
  action: 'upload',
  role: 'source',
  dataCenterId: 'dc-src',
  vmId: 'vm-1',
  hostId: 'host-1',
  imageId: 'disk.img',
  createdAt: new Date().toISOString(),
});

/** An image of 1 MiB chunks, alternately random and compressible, with its manifest cached as the agent keeps it. */
async function image(dir: string, migrationId: string, chunks: number): Promise<Image> {
  const parts = Array.from({ length: chunks }, (_, i) =>
    i % 2 === 0 ? randomBytes(MiB) : compressible(MiB),
  );
  const bytes = Buffer.concat(parts);
  const p = paths(dir);
  const path = p.image('disk.img');
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  let offset = 0;
  const list = parts.map((b) => {
    const c = { offset, length: b.length, sha256: sha(b) };
    offset += b.length;
    return c;
  });
  const manifest = buildManifest('raw', {
    size: bytes.length,
    sha256: sha(bytes),
    chunking: resolveChunking({ avgSize: 512 * 1024 }),
    chunks: list,
  });
  const st = await stat(path);
  await mkdir(dirname(p.manifest(migrationId)), { recursive: true });
  await writeFile(p.manifest(migrationId), JSON.stringify({ size: st.size, mtimeMs: st.mtimeMs, manifest }));
  return { dir, path, bytes, plan: list };
}

describe('source upload in packs', () => {
  let dir: string;
  let server: FakeSource | undefined;
  let lines: string[];
  const options = (client: ApiClient): AgentOptions => ({
    client,
    dataCenterId: 'dc-src',
    dir,
    concurrency: 8,
    pollIntervalMs: 1000,
    log: (line) => lines.push(line),
  });
  const journal = async (migrationId: string) =>
    (await readFile(paths(dir).journal(migrationId, 'upload'), 'utf8')).split('\n').filter(Boolean);

  beforeEach(async () => {
    dir = await mkdtemp(`${tmpdir()}/vmmig-source-packs-`);
    lines = [];
  });
  afterEach(async () => {
    await server?.stop();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('sends the plan compressed, in image order, in packs under the size limit, and journals every chunk', async () => {
    const img = await image(dir, 'mig-1', 24);
    server = await new FakeSource(img.plan).start();
    server.verifyingAnswers = 1;

    await uploadMissing(options(server.client), work('mig-1'), new AbortController());

    expect([...server.indexed.keys()].sort()).toEqual(img.plan.map((c) => c.sha256).sort());
    const packs = [...server.packs.values()];
    expect(packs.length).toBeGreaterThanOrEqual(2);
    for (const p of packs) expect(p.length).toBeLessThanOrEqual(MAX_PACK_BYTES);
    // Packed in image order: each pack holds a run of the plan, and the runs, put side by side, are the plan (packs
    // in flight together may arrive in any order).
    const position = new Map(img.plan.map((c, i) => [c.sha256, i]));
    const order = (await Promise.all(packs.map(async (p) => (await verifyPack(sha(p), p)).intact))).sort(
      (a, b) => (position.get(a[0]?.sha256 ?? '') ?? 0) - (position.get(b[0]?.sha256 ?? '') ?? 0),
    );
    expect(order.flat().map((e) => e.sha256)).toEqual(img.plan.map((c) => c.sha256));
    expect(order.flat().filter((e) => e.encoding === 'zstd')).toHaveLength(12);
    const sent = packs.reduce((n, p) => n + p.length, 0);
    expect(sent).toBeLessThan(img.bytes.length * 0.6);
    expect((await journal('mig-1')).sort()).toEqual(img.plan.map((c) => c.sha256).sort());
    expect(server.callsTo(completeUpload)).toHaveLength(2);
    expect(lines.at(-1)).toMatch(
      new RegExp(`sent 24 chunks in ${packs.length} packs: 24.0 MiB of chunks as `),
    );
  });

  it('keeps several packs uploading at once, never more than four', async () => {
    const img = await image(dir, 'mig-1', 80);
    server = await new FakeSource(img.plan).start();
    server.putDelayMs = 150;

    await uploadMissing(options(server.client), work('mig-1'), new AbortController());

    expect(server.packs.size).toBeGreaterThanOrEqual(5);
    expect(server.putsMax).toBeGreaterThanOrEqual(2);
    expect(server.putsMax).toBeLessThanOrEqual(4);
    expect(server.indexed.size).toBe(80);
  });

  it('does not journal the chunks of a rejected pack, and sends them again in the next round', async () => {
    const img = await image(dir, 'mig-1', 24);
    server = await new FakeSource(img.plan).start();
    server.rejectNextReports = 1;

    await uploadMissing(options(server.client), work('mig-1'), new AbortController());

    expect(server.indexed.size).toBe(24);
    const [rejected] = server.rejectedPacks as [string];
    expect(lines.some((l) => l.includes(`pack ${rejected.slice(0, 12)} rejected`))).toBe(true);
    // Round two resent exactly the chunks of the rejected pack.
    const { intact } = await verifyPack(rejected, server.packs.get(rejected) as Buffer);
    const urls = server.callsTo(createPackUploadUrl);
    const resent = await Promise.all(
      urls.slice(-1).map(async (c) => {
        const name = (c.json as { sha256: string }).sha256;
        return (await verifyPack(name, server?.packs.get(name) as Buffer)).intact.map((e) => e.sha256);
      }),
    );
    expect(resent.flat().sort()).toEqual(intact.map((e) => e.sha256).sort());
    expect(server.callsTo(completeUpload)).toHaveLength(2);
    expect((await journal('mig-1')).sort()).toEqual(img.plan.map((c) => c.sha256).sort());
  });

  it('asks for a fresh URL when one expired', async () => {
    const img = await image(dir, 'mig-1', 4);
    server = await new FakeSource(img.plan).start();
    server.expireNextPuts = 2;

    await uploadMissing(options(server.client), work('mig-1'), new AbortController());

    expect(server.packs.size).toBe(1);
    expect(server.callsTo(createPackUploadUrl)).toHaveLength(3);
    expect(server.indexed.size).toBe(4);
  });

  it('skips what an earlier run sent, and sends a journaled chunk the server found missing again', async () => {
    const img = await image(dir, 'mig-1', 8);
    server = await new FakeSource(img.plan).start();
    // The earlier run: chunks 0-3 sent, verified and journaled; chunk 4 journaled, but its pack never indexed.
    const earlier = img.plan.slice(0, 5).map((c) => c.sha256);
    await mkdir(dirname(paths(dir).journal('mig-1', 'upload')), { recursive: true });
    await writeFile(paths(dir).journal('mig-1', 'upload'), `${earlier.join('\n')}\n`);
    for (const c of img.plan.slice(0, 4)) server.indexed.set(c.sha256, {} as PackEntry);

    await uploadMissing(options(server.client), work('mig-1'), new AbortController());

    const sent = await Promise.all(
      [...server.packs].map(async ([name, p]) => (await verifyPack(name, p)).intact.map((e) => e.sha256)),
    );
    // Round one: chunks 5-7; the server answers chunk 4 missing; round two: chunk 4.
    expect(sent).toEqual([img.plan.slice(5).map((c) => c.sha256), [img.plan[4]?.sha256]]);
    expect(lines).toContain('mig-1: 1 chunks not stored; sending them again');
    expect(server.indexed.size).toBe(8);
  });

  it('fails the job when the image changed since it was chunked', async () => {
    const img = await image(dir, 'mig-1', 4);
    server = await new FakeSource(img.plan).start();
    // Same size and modification time, other bytes: only the digest can tell.
    const st = await stat(img.path);
    const changed = Buffer.from(img.bytes);
    changed.writeUInt8(changed.readUInt8(2 * MiB + 5) ^ 0xff, 2 * MiB + 5);
    await writeFile(img.path, changed);
    await utimes(img.path, st.atime, st.mtime);

    const upload = uploadMissing(options(server.client), work('mig-1'), new AbortController());

    await expect(upload).rejects.toThrow(JobFailure);
    await expect(upload).rejects.toThrow(/changed since it was chunked \(chunk at offset 2097152 differs\)/);
    expect(server.callsTo(completeUpload)).toHaveLength(0);
  });
});
