// Chunk repair with packs, in-process (app.request) over in-memory storage and content index: a chunk is checked
// where its destination's index says it is (its range of a pack, decoded and hashed); intact, the agent gets the
// pack's URL and the chunk's range again; corrupt, the whole pack goes and is copied again from the nearest
// holder whose copy is intact, and every chunk of the copied pack is indexed at the destination; a chunk stored
// alone before packs is repaired as before; with no intact copy anywhere, 409 and every bad copy is gone.
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { ApiDeps } from '../../../../lambdas/api/deps.ts';
import { router } from '../../../../lambdas/api/env.ts';
import { errorResponse } from '../../../../lambdas/api/errors.ts';
import { agentRepairRoutes } from '../../../../lambdas/api/routes/agent-repair.ts';
import type { BucketRef } from '../../../../lambdas/aws/chunk-storage.ts';
import type { IndexedChunk } from '../../../../lambdas/aws/content-index.ts';
import type { ChunkRepair } from '../../../../protocol/api/repair.ts';
import { chunkKey, objectKeyOf, packKey } from '../../../../protocol/chunk-key.ts';
import type { StoredChunk } from '../../../../protocol/pack.ts';
import {
  encodeChunk,
  openChunk,
  PackBuilder,
  type PackEntry,
  readPackToc,
} from '../../../../protocol/pack.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const CHUNKS = [0, 1, 2].map((i) =>
  i === 1 ? randomBytes(40_000) : Buffer.from(`chunk ${i} `.repeat(5000)),
);

async function buildPack(chunks: readonly Buffer[]) {
  const b = new PackBuilder();
  for (const raw of chunks) {
    const { stored, encoding } = await encodeChunk(raw);
    b.add(sha(raw), raw.length, stored, encoding);
  }
  return b.finish();
}

/** The cache nodes: the destination's (osa), a near one (nrt) and a far one (iad). */
const node = (id: string, lat: number, lon: number) => ({
  id,
  bucket: `bucket-${id}`,
  region: 'ap-northeast-1',
  location: { lat, lon },
  status: 'up',
});
const NODES = [node('osa', 34.7, 135.5), node('nrt', 35.7, 139.7), node('iad', 38.9, -77.4)];
const TARGET = 'osa';

/** Buckets as maps of key → bytes, with what ChunkStorage tells of them (the same checks, on these bytes). */
class MemoryStorage {
  readonly objects = new Map<string, Buffer>();
  readonly deleted: string[] = [];
  readonly copied: string[] = [];
  constructor(private readonly manifest: unknown) {}

  put(nodeId: string, key: string, bytes: Buffer) {
    this.objects.set(`bucket-${nodeId}/${key}`, Buffer.from(bytes));
  }
  get(nodeId: string, key: string) {
    return this.objects.get(`bucket-${nodeId}/${key}`);
  }
  async getJson() {
    return this.manifest;
  }
  async inspectEntry(b: BucketRef, at: StoredChunk) {
    const bytes = this.objects.get(`${b.bucket}/${objectKeyOf(at)}`);
    if (!bytes) return 'missing';
    if (at.pack === undefined)
      return sha(bytes) === at.sha256 && bytes.length === at.length ? 'intact' : 'corrupt';
    const stored = bytes.subarray(at.offset, (at.offset ?? 0) + (at.stored ?? 0));
    const entry = { sha256: at.sha256, length: at.length, encoding: at.encoding ?? 'raw' } as const;
    return (await openChunk(stored, entry)) ? 'intact' : 'corrupt';
  }
  async deleteObject(b: BucketRef, at: StoredChunk) {
    this.deleted.push(`${b.bucket}/${objectKeyOf(at)}`);
    this.objects.delete(`${b.bucket}/${objectKeyOf(at)}`);
  }
  async copyObject(from: BucketRef, to: BucketRef, at: StoredChunk) {
    const bytes = this.objects.get(`${from.bucket}/${objectKeyOf(at)}`);
    if (!bytes) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
    this.copied.push(`${from.bucket} → ${to.bucket}: ${objectKeyOf(at)}`);
    this.objects.set(`${to.bucket}/${objectKeyOf(at)}`, Buffer.from(bytes));
  }
  async packToc(b: BucketRef, pack: string) {
    const bytes = this.objects.get(`${b.bucket}/${packKey(pack)}`);
    if (!bytes) return undefined;
    const toc = readPackToc(pack, bytes, bytes.length);
    return 'entries' in toc ? toc.entries : undefined;
  }
}

class MemoryIndex {
  readonly nodes = new Map<string, Map<string, IndexedChunk>>();
  at(nodeId: string) {
    let m = this.nodes.get(nodeId);
    if (!m) {
      m = new Map();
      this.nodes.set(nodeId, m);
    }
    return m;
  }
  async locate(nodeId: string, digests: readonly string[]) {
    const m = this.at(nodeId);
    return new Map(digests.flatMap((d) => (m.has(d) ? [[d, m.get(d) as IndexedChunk] as const] : [])));
  }
  async holders(digests: readonly string[], nodeIds: readonly string[]) {
    const out = new Map<string, Set<string>>();
    for (const d of digests)
      for (const n of nodeIds) if (this.at(n).has(d)) out.set(d, (out.get(d) ?? new Set()).add(n));
    return out;
  }
  async record(nodeId: string, chunks: readonly IndexedChunk[]) {
    for (const c of chunks) this.at(nodeId).set(c.sha256, { ...c });
    return { addedBytes: 0, addedChunks: chunks.length, refused: [] };
  }
  async remove(nodeId: string, sha256: string) {
    return this.at(nodeId).delete(sha256);
  }
}

async function setup() {
  const pack = await buildPack(CHUNKS);
  const migrationId = `mig-${randomBytes(10).toString('hex')}`;
  const manifest = {
    chunks: CHUNKS.map((c, i) => ({ offset: i * 100_000, length: c.length, sha256: sha(c) })),
  };
  const storage = new MemoryStorage(manifest);
  const index = new MemoryIndex();
  const invalidated: string[] = [];
  const history: string[] = [];
  const migration = {
    id: migrationId,
    status: 'DOWNLOADING',
    sourceDataCenterId: 'dc-gz',
    destinations: ['dc-osa'],
    legs: { 'dc-osa': { status: 'DOWNLOADING', cacheNodeId: TARGET } },
  };
  const deps = {
    storage,
    contentIndex: index,
    control: { bucket: 'control', region: 'ap-northeast-1' },
    registry: { allCacheNodes: async () => NODES },
    migrations: {
      require: async () => migration,
      addHistory: async (_id: string, event: string, message: string) => {
        history.push(`${event}: ${message}`);
      },
    },
    edgeCache: {
      invalidate: async (nodeId: string, key: string) => {
        invalidated.push(`${nodeId}:${key}`);
      },
    },
    edgeSigner: { sign: async (nodeId: string, key: string) => `https://edge.test/${nodeId}/${key}?sig` },
  } as unknown as ApiDeps;
  const app = router();
  app.use(async (c, next) => {
    c.set('principal', { kind: 'admin', id: 'admin' });
    await next();
  });
  app.route('/', agentRepairRoutes(deps));
  app.onError((err, c) => errorResponse(c, err));
  const repair = async (chunk: number) => {
    const res = await app.request(`/v1/migrations/${migrationId}/destinations/dc-osa/repair`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sha256: sha(CHUNKS[chunk] as Buffer) }),
    });
    return { status: res.status, body: (await res.json()) as ChunkRepair & { error?: { message: string } } };
  };
  /** Stores the pack at a node and indexes its entries there. */
  const holdPack = async (nodeId: string, bytes = pack.bytes) => {
    storage.put(nodeId, packKey(pack.sha256), bytes);
    await index.record(nodeId, pack.entries);
  };
  return { pack, storage, index, invalidated, history, repair, holdPack };
}

/** The pack with one bit flipped in the stored bytes of entry `i`. */
function damaged(bytes: Buffer, entry: PackEntry): Buffer {
  const out = Buffer.from(bytes);
  const at = entry.offset + (entry.stored >> 1);
  out[at] = (out[at] as number) ^ 0x10;
  return out;
}

const partOf = (e: PackEntry) => ({ offset: e.offset, length: e.stored, encoding: e.encoding });

describe('repairing a packed chunk', () => {
  it('intact at the destination: the pack URL and the chunk range again, the cached pack invalidated', async () => {
    const t = await setup();
    await t.holdPack(TARGET);
    const e = t.pack.entries[1] as PackEntry;
    const { status, body } = await t.repair(1);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'intact',
      url: `https://edge.test/osa/${packKey(t.pack.sha256)}?sig`,
      part: partOf(e),
    });
    expect(t.invalidated).toEqual([`osa:${packKey(t.pack.sha256)}`]);
    expect(t.storage.deleted).toEqual([]);
  });

  it('corrupt at the destination: the pack is deleted, copied from the nearest intact holder, all its chunks indexed', async () => {
    const t = await setup();
    const e = t.pack.entries[0] as PackEntry;
    await t.holdPack(TARGET, damaged(t.pack.bytes, e));
    await t.holdPack('nrt');
    await t.holdPack('iad');
    // Another chunk of the pack was dropped at the destination meanwhile: the copy brings it back.
    await t.index.remove(TARGET, (t.pack.entries[2] as PackEntry).sha256);
    const { status, body } = await t.repair(0);
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'repaired', repairedFrom: 'nrt', part: partOf(e) });
    expect(t.storage.deleted).toEqual([`bucket-osa/${packKey(t.pack.sha256)}`]);
    expect(t.storage.copied).toEqual([`bucket-nrt → bucket-osa: ${packKey(t.pack.sha256)}`]);
    expect(t.storage.get(TARGET, packKey(t.pack.sha256))?.equals(t.pack.bytes)).toBe(true);
    expect([...t.index.at(TARGET).values()]).toEqual(
      expect.arrayContaining(t.pack.entries.map((x) => ({ ...x }))),
    );
    expect(t.history).toEqual([
      expect.stringMatching(/^chunk-repaired: dc-osa: chunk .* was corrupt .* from nrt$/),
    ]);
  });

  it('leaves chunks the destination indexes in another object where they are', async () => {
    const t = await setup();
    const other = t.pack.entries[2] as PackEntry;
    await t.holdPack('nrt');
    // Chunk 2 is held at the destination alone (stored before packs), chunk 0 nowhere there.
    t.storage.put(TARGET, chunkKey(other.sha256), CHUNKS[2] as Buffer);
    await t.index.record(TARGET, [{ sha256: other.sha256, length: other.length }]);
    const { body } = await t.repair(0);
    expect(body.status).toBe('repaired');
    expect(t.index.at(TARGET).get(other.sha256)).toEqual({ sha256: other.sha256, length: other.length });
    expect(t.index.at(TARGET).get((t.pack.entries[1] as PackEntry).sha256)?.pack).toBe(t.pack.sha256);
    // What the agent was sent to (the key before packs, the chunk being unindexed) and the pack are invalidated.
    expect(t.invalidated).toEqual([
      `osa:${chunkKey((t.pack.entries[0] as PackEntry).sha256)}`,
      `osa:${packKey(t.pack.sha256)}`,
    ]);
  });

  it('skips a holder whose copy is corrupt (deleting it) for the next one', async () => {
    const t = await setup();
    const e = t.pack.entries[1] as PackEntry;
    await t.holdPack('nrt', damaged(t.pack.bytes, e));
    await t.holdPack('iad');
    const { body } = await t.repair(1);
    expect(body).toMatchObject({ status: 'repaired', repairedFrom: 'iad' });
    expect(t.storage.deleted).toEqual([`bucket-nrt/${packKey(t.pack.sha256)}`]);
    expect(t.index.at('nrt').has(e.sha256)).toBe(false);
  });

  it('409 when no holder has an intact copy: every bad copy deleted and unindexed', async () => {
    const t = await setup();
    const e = t.pack.entries[1] as PackEntry;
    await t.holdPack(TARGET, damaged(t.pack.bytes, e));
    await t.holdPack('nrt', damaged(t.pack.bytes, e));
    const { status, body } = await t.repair(1);
    expect(status).toBe(409);
    expect(body.error?.message).toMatch(/osa \(corrupt\), nrt \(corrupt\)/);
    expect(t.storage.objects.size).toBe(0);
    expect(t.index.at(TARGET).has(e.sha256)).toBe(false);
    expect(t.index.at('nrt').has(e.sha256)).toBe(false);
    expect(t.history).toEqual([expect.stringMatching(/^chunk-unrepairable: /)]);
  });
});

describe('repairing a chunk stored alone (before packs)', () => {
  it('is copied as its own object and answered without a part', async () => {
    const t = await setup();
    const raw = CHUNKS[1] as Buffer;
    t.storage.put('nrt', chunkKey(sha(raw)), raw);
    await t.index.record('nrt', [{ sha256: sha(raw), length: raw.length }]);
    const { status, body } = await t.repair(1);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      status: 'repaired',
      url: `https://edge.test/osa/${chunkKey(sha(raw))}?sig`,
    });
    expect(body.part).toBeUndefined();
    expect(t.index.at(TARGET).get(sha(raw))).toEqual({ sha256: sha(raw), length: raw.length });
  });
});
