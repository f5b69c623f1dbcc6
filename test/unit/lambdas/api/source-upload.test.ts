// How the API checks a source upload (lambdas/api/routes/source-upload.ts) against an in-memory source node and
// content index: a reported pack is indexed only with chunks it holds intact and that belong to the image, a bad
// pack is rejected with the reason, a report made twice changes nothing, a chunk already indexed keeps where it is
// stored, and a completion check too large for one call resumes where the previous one stopped.

import { createHash, randomBytes } from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { missingAtSource, verifyPacks } from '../../../../lambdas/api/routes/source-upload.ts';
import type { IndexedChunk } from '../../../../lambdas/aws/content-index.ts';
import type { Uses } from '../../../../lambdas/aws/deps.ts';
import type { UploadPlanEntry } from '../../../../lambdas/domain/control-keys.ts';
import { uploadCheckKey } from '../../../../lambdas/domain/control-keys.ts';
import {
  type BuiltPack,
  encodeChunk,
  PackBuilder,
  PackFormatError,
  verifyPack,
} from '../../../../protocol/pack.ts';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const NODE = { id: 'cn-src', bucket: 'bucket-src', region: 'eu-west-1' };
const CONTROL = { bucket: 'control', region: 'eu-west-1' };

async function packOf(chunks: readonly Uint8Array[]): Promise<BuiltPack> {
  const builder = new PackBuilder();
  for (const c of chunks) {
    const { stored, encoding } = await encodeChunk(c);
    builder.add(sha(c), c.length, stored, encoding);
  }
  return builder.finish();
}

/** The source node's bucket, the control bucket and the content index, in memory. */
class World {
  readonly objects = new Map<string, Uint8Array>();
  readonly index = new Map<string, IndexedChunk>();
  /** Chunks the collector is deleting at the node: refused by record, absent to locate and holders. */
  readonly deleting = new Set<string>();
  holderLookups = 0;
  /** Milliseconds each holders() call takes on the virtual clock. */
  lookupMs = 0;

  readonly deps = {
    control: CONTROL,
    storage: {
      readPack: async (_node: unknown, pack: string) => {
        const bytes = this.objects.get(pack);
        if (!bytes) return { state: 'missing' as const };
        if (sha(bytes) !== pack)
          return { state: 'corrupt' as const, reason: 'the pack does not hash to its name' };
        try {
          return { state: 'read' as const, size: bytes.length, ...(await verifyPack(pack, bytes)) };
        } catch (err) {
          if (err instanceof PackFormatError) return { state: 'corrupt' as const, reason: err.message };
          throw err;
        }
      },
      getJson: async (_b: unknown, key: string) => {
        const bytes = this.objects.get(key);
        return bytes && JSON.parse(Buffer.from(bytes).toString('utf8'));
      },
      putJson: async (_b: unknown, key: string, value: unknown) => {
        this.objects.set(key, Buffer.from(JSON.stringify(value)));
      },
    },
    contentIndex: {
      locate: async (_node: string, digests: readonly string[]) =>
        new Map(
          digests.flatMap((d) => {
            const e = this.index.get(d);
            return e && !this.deleting.has(d) ? [[d, e] as const] : [];
          }),
        ),
      record: async (_node: string, chunks: readonly IndexedChunk[]) => {
        let addedChunks = 0;
        const refused: string[] = [];
        for (const c of chunks) {
          if (this.deleting.has(c.sha256)) refused.push(c.sha256);
          else {
            if (!this.index.has(c.sha256)) addedChunks++;
            this.index.set(c.sha256, c);
          }
        }
        return { addedChunks, addedBytes: 0, refused };
      },
      holders: async (digests: readonly string[]) => {
        this.holderLookups++;
        if (this.lookupMs > 0) vi.setSystemTime(Date.now() + this.lookupMs);
        return new Map(
          digests
            .filter((d) => this.index.has(d) && !this.deleting.has(d))
            .map((d) => [d, new Set([NODE.id])]),
        );
      },
    },
  } as unknown as Uses<'storage' | 'contentIndex' | 'control'>;
}

describe('pack reports', () => {
  let world: World;
  let chunks: Buffer[];
  let image: Set<string>;
  beforeEach(() => {
    world = new World();
    chunks = [randomBytes(5000), Buffer.alloc(40_000, 7), randomBytes(3000)];
    image = new Set(chunks.map(sha));
  });

  it('indexes every chunk of an intact pack where it is stored, and counts the pack as sent once', async () => {
    const pack = await packOf(chunks);
    world.objects.set(pack.sha256, pack.bytes);

    const first = await verifyPacks(world.deps, NODE, [pack.sha256, pack.sha256], image);
    const again = await verifyPacks(world.deps, NODE, [pack.sha256], image);

    expect(first).toEqual({ verified: 1, chunks: 3, rejected: [], wireBytes: pack.bytes.length });
    expect([...world.index.values()]).toEqual(pack.entries);
    expect(world.index.get(sha(chunks[1] as Buffer))?.encoding).toBe('zstd');
    expect(again).toEqual({ verified: 1, chunks: 3, rejected: [], wireBytes: 0 });
  });

  it('leaves a chunk already indexed where it is stored', async () => {
    const older = await packOf([chunks[0] as Buffer]);
    const pack = await packOf(chunks);
    world.objects.set(older.sha256, older.bytes);
    world.objects.set(pack.sha256, pack.bytes);
    await verifyPacks(world.deps, NODE, [older.sha256], image);

    const report = await verifyPacks(world.deps, NODE, [pack.sha256], image);

    expect(report.chunks).toBe(3);
    expect(world.index.get(sha(chunks[0] as Buffer))?.pack).toBe(older.sha256);
    expect(world.index.get(sha(chunks[2] as Buffer))?.pack).toBe(pack.sha256);
  });

  it('rejects a pack that is not stored, or not a pack, naming why', async () => {
    const pack = await packOf(chunks);
    const garbage = randomBytes(1000);
    world.objects.set(sha(garbage), garbage);

    const report = await verifyPacks(world.deps, NODE, [pack.sha256, sha(garbage)], image);

    expect(report.verified).toBe(0);
    expect(report.rejected).toEqual([
      { sha256: pack.sha256, reason: expect.stringMatching(/not stored at cache node cn-src: PUT it/) },
      { sha256: sha(garbage), reason: expect.stringMatching(/^not a valid pack: /) },
    ]);
    expect(world.index.size).toBe(0);
  });

  it('rejects a pack with a damaged chunk, and indexes its intact ones', async () => {
    // A pack built wrong: the middle entry's stored bytes are another chunk's.
    const builder = new PackBuilder();
    const [a, b, c] = chunks as [Buffer, Buffer, Buffer];
    builder.add(sha(a), a.length, a, 'raw');
    builder.add(sha(b), b.length, randomBytes(b.length), 'raw');
    builder.add(sha(c), c.length, c, 'raw');
    const pack = builder.finish();
    world.objects.set(pack.sha256, pack.bytes);

    const report = await verifyPacks(world.deps, NODE, [pack.sha256], image);

    expect(report.verified).toBe(0);
    expect(report.rejected[0]?.reason).toMatch(/1 of its 3 chunks do not decode to their digest/);
    expect([...world.index.keys()].sort()).toEqual([sha(a), sha(c)].sort());
    expect(report.wireBytes).toBe(pack.bytes.length);
  });

  it('does not index chunks that are not of the image', async () => {
    const stranger = randomBytes(2000);
    const pack = await packOf([...chunks, stranger]);
    world.objects.set(pack.sha256, pack.bytes);

    const report = await verifyPacks(world.deps, NODE, [pack.sha256], image);

    expect(report.rejected[0]?.reason).toMatch(/1 of its 4 chunks are not chunks of this image/);
    expect(world.index.has(sha(stranger))).toBe(false);
    expect(world.index.size).toBe(3);
  });

  it('does not count a chunk the collector is deleting', async () => {
    const pack = await packOf(chunks);
    world.objects.set(pack.sha256, pack.bytes);
    world.deleting.add(sha(chunks[2] as Buffer));

    const report = await verifyPacks(world.deps, NODE, [pack.sha256], image);

    expect(report).toMatchObject({ verified: 1, chunks: 2, rejected: [] });
  });

  it('rejects packs it had no time to read, to be reported again', async () => {
    const pack = await packOf(chunks);
    world.objects.set(pack.sha256, pack.bytes);

    const report = await verifyPacks(world.deps, NODE, [pack.sha256], image, Date.now() - 1);

    expect(report.rejected).toEqual([
      { sha256: pack.sha256, reason: 'not read back in time: report it again' },
    ]);
  });
});

describe('the completion check', () => {
  const planOf = (n: number): UploadPlanEntry[] =>
    Array.from({ length: n }, (_, i) => ({
      sha256: sha(Buffer.from(String(i))),
      offset: i * 10,
      length: 10,
    }));
  const hold = (world: World, entries: readonly UploadPlanEntry[]) => {
    for (const e of entries) world.index.set(e.sha256, { sha256: e.sha256, length: e.length });
  };
  const KEY = uploadCheckKey('mig-1', 1, 'token-1');

  it('names the planned chunks not held at the source node', async () => {
    const world = new World();
    const plan = planOf(10);
    hold(
      world,
      plan.filter((_, i) => i !== 3 && i !== 7),
    );

    const { missing, unchecked } = await missingAtSource(world.deps, NODE, plan, KEY);

    expect(missing.map((e) => e.sha256)).toEqual([plan[3]?.sha256, plan[7]?.sha256]);
    expect(unchecked).toBe(0);
  });

  it('gets through a plan too large for one call over several calls', async () => {
    const world = new World();
    const plan = planOf(23_000);
    hold(world, plan);
    // Looking up a slice of 5000 takes 8 s of the 20 s budget: three slices a call.
    world.lookupMs = 8000;
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const first = await missingAtSource(world.deps, NODE, plan, KEY, Date.now() + 20_000);
      const second = await missingAtSource(world.deps, NODE, plan, KEY, Date.now() + 20_000);

      expect(first).toEqual({ missing: [], unchecked: 23_000 - 15_000 });
      expect(second).toEqual({ missing: [], unchecked: 0 });
      expect(world.holderLookups).toBe(5);
    } finally {
      vi.useRealTimers();
    }
  });

  it('resumes from the first missing chunk once it is stored, and only for the same wait and plan', async () => {
    const world = new World();
    const plan = planOf(12_000);
    hold(
      world,
      plan.filter((_, i) => i !== 6000),
    );

    const first = await missingAtSource(world.deps, NODE, plan, KEY);
    hold(world, plan);
    const second = await missingAtSource(world.deps, NODE, plan, KEY);
    const otherWait = await missingAtSource(world.deps, NODE, plan, uploadCheckKey('mig-1', 1, 'token-2'));

    expect(first.missing.map((e) => e.sha256)).toEqual([plan[6000]?.sha256]);
    expect(second).toEqual({ missing: [], unchecked: 0 });
    expect(otherWait).toEqual({ missing: [], unchecked: 0 });
    // Three slices, then the two from chunk 6000 on, then all three again for another wait.
    expect(world.holderLookups).toBe(3 + 2 + 3);
  });
});
