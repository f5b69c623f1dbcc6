// CopyBatch's copy claims against an in-memory world (content index, claims with the conditional put's rules,
// cache node objects, migration statuses) and a virtual clock: a chunk another live migration is copying is
// awaited, verified and recorded, never copied twice; claims are taken over when released, expired or held by a
// migration that ended; past the wait the task fails with CopiesPending, having recorded what it verified and
// released its claims; progress is counted once.
//
// The index is a cache of the truth: a chunk it places at its node costs a HEAD and a touch (no claim, no copy);
// an entry found wrong is dropped and the chunk copied; a source that lacks the chunk is dropped and the next
// nearest holder tried; a chunk held nowhere is counted lost; a chunk the collector is deleting is not recorded.
//
// Chunks live in objects: chunks stored alone (the format before packs, most cases below) and packs. A copy copies
// the object the source's entry names, once per node for all the items it holds, and records every chunk of a pack
// at the node.
import { beforeEach, describe, expect, it } from 'vitest';
import { COPY_CLAIM_TTL_SECONDS, type IndexedChunk } from '../../../../lambdas/aws/content-index.ts';
import type { CopyItem } from '../../../../lambdas/domain/control-keys.ts';
import type { CacheNodeStatus } from '../../../../lambdas/domain/registry.ts';
import { packBytes } from '../../../../lambdas/domain/stored-objects.ts';
import {
  type Clock,
  COPY_CONCURRENCY,
  COPY_WAIT_MS,
  CopiesPending,
  type CopyBatchDeps,
  copyBatch,
} from '../../../../lambdas/workflow/copy-batch.ts';
import { TransientError } from '../../../../lambdas/workflow/task.ts';
import type { MigrationStatus } from '../../../../protocol/api/migrations.ts';
import { chunkKey, objectKeyOf, packKey } from '../../../../protocol/chunk-key.ts';
import type { PackEntry } from '../../../../protocol/pack.ts';

const ME = 'mig-aaaaaaaaaaaaaaaaaaaa';
const OTHER = 'mig-bbbbbbbbbbbbbbbbbbbb';
const THIRD = 'mig-cccccccccccccccccccc';
const sha = (n: number) => n.toString(16).padStart(64, '0');
const item = (n: number, to = 'nrt'): CopyItem => ({ sha256: sha(n), length: 1000 + n, from: 'hkg', to });
const at = (node: string, digest: string) => `${node}/${digest}`;
/** Where the cache nodes are: seen from nrt, hkg (~2,900 km) is nearer than sin (~5,300 km). */
const LOCATIONS: Record<string, { lat: number; lon: number }> = {
  hkg: { lat: 22.32, lon: 114.17 },
  nrt: { lat: 35.68, lon: 139.69 },
  sin: { lat: 1.35, lon: 103.82 },
};

/** A pack at a node, as the fake storage keeps it: its size and table of contents. */
interface StoredObject {
  size: number;
  toc?: PackEntry[];
}

/** A pack of these chunks (stored bytes: half the length, as if compressed), named after its chunks. */
function packOf(
  items: readonly CopyItem[],
  name = 0xbeef,
): { sha256: string; entries: PackEntry[]; size: number } {
  const sha256 = name.toString(16).padStart(64, 'a');
  let offset = 0;
  const entries = items.map((i) => {
    const e: PackEntry = {
      sha256: i.sha256,
      length: i.length,
      pack: sha256,
      offset,
      stored: Math.ceil(i.length / 2),
      encoding: 'zstd',
    };
    offset += e.stored;
    return e;
  });
  return { sha256, entries, size: packBytes(entries) };
}

/** The shared state several copy tasks see, and what they did to it. */
class World {
  now = 1_000_000;
  /** Content index entries (`node/digest`), and those of them the collector is deleting (`deleting` set). */
  readonly index = new Map<string, IndexedChunk>();
  readonly deleting = new Set<string>();
  readonly claims = new Map<string, { owner: string; expiresAt: number }>();
  /** Objects by `node/object key`: chunks stored alone (size: their length) and packs. */
  readonly objects = new Map<string, StoredObject>();
  /**
   * Objects deleted behind the system's back (an operator's cleanup, a lifecycle rule): a run does not stock its
   * planned sources with them.
   */
  readonly gone = new Set<string>();
  readonly nodeStatus = new Map<string, CacheNodeStatus>();
  readonly statuses = new Map<string, MigrationStatus>();
  readonly batches = new Map<string, CopyItem[]>();
  readonly log: string[] = [];
  readonly updates: { id: string; increment: unknown; history?: unknown }[] = [];
  readonly history: { id: string; event: string; message: string }[] = [];
  /** Copies counted on each migration (`chunksCopied`, `bytesCopied`), apart from the legs' progress. */
  readonly copied = new Map<string, { chunks: number; bytes: number }>();
  /** Run at each sleep, after the clock moved: other migrations acting meanwhile. */
  readonly onSleep: (() => void)[] = [];
  /** Objects (a chunk's digest, or a pack's) whose copy fails, lands corrupt, or is refused with a 403. */
  failCopy = new Set<string>();
  badCopy = new Set<string>();
  /** A 403 although the source holds the object (a permissions problem). */
  denyCopy = new Set<string>();
  /** S3 answers a copy from a source that lacks the chunk with 403 AccessDenied (no ListBucket), not 404. */
  denyMissing = false;
  inFlight = 0;
  maxInFlight = 0;

  clock(): Clock {
    return {
      now: () => this.now,
      sleep: async (ms) => {
        this.now += ms;
        await new Promise((r) => setImmediate(r));
        for (const f of this.onSleep) f();
      },
    };
  }

  deps(): CopyBatchDeps {
    const tick = () => new Promise((r) => setImmediate(r));
    const s3Error = (name: string, status: number, message: string) =>
      Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
    const nameOf = (e: IndexedChunk) => e.pack ?? e.sha256;
    const held = (node: string, d: string) => this.index.has(at(node, d)) && !this.deleting.has(at(node, d));
    return {
      control: { bucket: 'control', region: 'r' },
      registry: {
        allCacheNodes: async () =>
          ['hkg', 'nrt', 'sin'].map((id) => ({
            id,
            bucket: id,
            region: 'r',
            location: LOCATIONS[id],
            status: this.nodeStatus.get(id) ?? 'active',
          })),
      },
      storage: {
        getJson: async (_: unknown, key: string) => this.batches.get(key),
        objectState: async (node: { bucket: string }, e: IndexedChunk) => {
          this.log.push(`head ${node.bucket} ${nameOf(e)}`);
          await tick();
          const o = this.objects.get(at(node.bucket, objectKeyOf(e)));
          if (o === undefined) return 'missing';
          if (e.pack === undefined) return o.size === e.length ? 'present' : 'mismatch';
          return o.toc && o.size >= (e.offset ?? 0) + (e.stored ?? e.length) ? 'present' : 'mismatch';
        },
        copyObject: async (from: { bucket: string }, to: { bucket: string }, e: IndexedChunk) => {
          const name = nameOf(e);
          this.log.push(`copy ${from.bucket}>${to.bucket} ${name}`);
          this.inFlight++;
          this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
          await tick();
          this.inFlight--;
          if (this.failCopy.has(name))
            throw Object.assign(new Error('We encountered an internal error'), { name: 'InternalError' });
          if (this.denyCopy.has(name)) throw s3Error('AccessDenied', 403, 'Access Denied');
          const source = this.objects.get(at(from.bucket, objectKeyOf(e)));
          if (!source) {
            throw this.denyMissing
              ? s3Error('AccessDenied', 403, 'Access Denied')
              : s3Error('NoSuchKey', 404, 'The specified key does not exist.');
          }
          this.objects.set(
            at(to.bucket, objectKeyOf(e)),
            this.badCopy.has(name) ? { size: 1 } : { ...source },
          );
        },
        packToc: async (node: { bucket: string }, pack: string) => {
          this.log.push(`toc ${node.bucket} ${pack}`);
          await tick();
          return this.objects.get(at(node.bucket, packKey(pack)))?.toc;
        },
      },
      contentIndex: {
        holders: async (digests: string[], nodes: string[]) => {
          this.log.push(`index ${digests.length}`);
          const out = new Map<string, Set<string>>();
          for (const d of digests)
            for (const n of nodes) if (held(n, d)) out.set(d, new Set([...(out.get(d) ?? []), n]));
          return out;
        },
        locate: async (node: string, digests: string[]) => {
          const out = new Map<string, IndexedChunk>();
          for (const d of digests) {
            const e = this.index.get(at(node, d));
            if (e && held(node, d)) out.set(d, e);
          }
          return out;
        },
        record: async (node: string, chunks: IndexedChunk[]) => {
          let addedBytes = 0;
          let addedChunks = 0;
          const refused: string[] = [];
          for (const c of chunks) {
            this.log.push(`record ${node} ${c.sha256}`);
            if (this.deleting.has(at(node, c.sha256))) {
              refused.push(c.sha256);
              continue;
            }
            if (!this.index.has(at(node, c.sha256))) {
              addedBytes += c.stored ?? c.length;
              addedChunks++;
            }
            this.index.set(at(node, c.sha256), c);
          }
          return { addedBytes, addedChunks, refused };
        },
        touch: async (node: string, digests: string[]) => {
          const touched = new Set<string>();
          for (const d of digests) {
            this.log.push(`touch ${node} ${d}`);
            if (held(node, d)) touched.add(d);
          }
          return touched;
        },
        remove: async (node: string, digest: string) => {
          this.log.push(`remove ${node} ${digest}`);
          this.deleting.delete(at(node, digest));
          return this.index.delete(at(node, digest));
        },
        claimCopies: async (node: string, digests: string[], me: string, takeOver: Map<string, string>) => {
          const mine = new Set<string>();
          const others = new Map<string, string>();
          for (const d of digests) {
            this.log.push(`claim ${node} ${d}`);
            const c = this.claims.get(at(node, d));
            if (!c || c.owner === me || c.expiresAt < this.now || takeOver.get(d) === c.owner) {
              this.claims.set(at(node, d), {
                owner: me,
                expiresAt: this.now + COPY_CLAIM_TTL_SECONDS * 1000,
              });
              mine.add(d);
            } else others.set(d, c.owner);
          }
          return { mine, others };
        },
        copyClaimHolders: async (node: string, digests: string[]) => {
          const out = new Map<string, string>();
          for (const d of digests) {
            const c = this.claims.get(at(node, d));
            if (c && c.expiresAt >= this.now) out.set(d, c.owner);
          }
          return out;
        },
        releaseCopies: async (node: string, digests: string[], me: string) => {
          for (const d of digests)
            if (this.claims.get(at(node, d))?.owner === me) this.claims.delete(at(node, d));
        },
      },
      migrations: {
        getMany: async (ids: string[]) =>
          ids.filter((id) => this.statuses.has(id)).map((id) => ({ id, status: this.statuses.get(id) })),
        require: async (id: string) => ({
          id,
          status: this.statuses.get(id) ?? 'REPLICATING',
          legs: {
            'dc-osa': { dataCenterId: 'dc-osa', cacheNodeId: 'nrt', status: 'REPLICATING' },
            'dc-jkt': { dataCenterId: 'dc-jkt', cacheNodeId: 'sin', status: 'REPLICATING' },
          },
        }),
        update: async (
          id: string,
          spec: { increment: [string[], number][] },
          options: { history?: unknown } = {},
        ) => {
          const [chunks, bytes] = spec.increment;
          if (chunks?.[0][0] === 'chunksCopied') {
            const c = this.copied.get(id) ?? { chunks: 0, bytes: 0 };
            this.copied.set(id, { chunks: c.chunks + chunks[1], bytes: c.bytes + (bytes?.[1] ?? 0) });
            return;
          }
          this.updates.push({
            id,
            increment: spec.increment,
            ...(options.history ? { history: options.history } : {}),
          });
        },
        addHistory: async (id: string, event: string, message: string) => {
          this.history.push({ id, event, message });
        },
      },
    } as unknown as CopyBatchDeps;
  }

  /**
   * Runs a copy task; the planned source of each copy holds its chunk (stored alone, unless the test put it in a
   * pack there) unless the test made it `gone`.
   */
  run(migrationId: string, items: CopyItem[]) {
    for (const i of items) {
      if (i.verify || this.gone.has(at(i.from, i.sha256))) continue;
      const e = this.index.get(at(i.from, i.sha256));
      if (e === undefined) this.hold(i.from, i);
      else if (e.pack === undefined) this.objects.set(at(i.from, chunkKey(i.sha256)), { size: i.length });
    }
    const prefix = `migrations/${migrationId}/a1/replication`;
    this.batches.set(`${prefix}/0.json`, items);
    return copyBatch(this.deps(), { migrationId, prefix, batch: 0 }, this.clock());
  }

  claimFor(owner: string, i: CopyItem, expiresIn = COPY_CLAIM_TTL_SECONDS * 1000) {
    this.claims.set(at(i.to, i.sha256), { owner, expiresAt: this.now + expiresIn });
  }

  /** A chunk stored alone at a node (with its true length) and indexed there: the format before packs. */
  hold(node: string, i: CopyItem) {
    this.objects.set(at(node, chunkKey(i.sha256)), { size: i.length });
    this.index.set(at(node, i.sha256), { sha256: i.sha256, length: i.length });
  }

  /** An entry without its object (stored alone). */
  indexAt(node: string, i: CopyItem) {
    this.index.set(at(node, i.sha256), { sha256: i.sha256, length: i.length });
  }

  /** A pack stored at a node, and (unless `indexed` is false) its chunks indexed there. */
  holdPack(node: string, pack: ReturnType<typeof packOf>, indexed = true) {
    this.objects.set(at(node, packKey(pack.sha256)), { size: pack.size, toc: pack.entries });
    if (indexed) for (const e of pack.entries) this.index.set(at(node, e.sha256), e);
  }

  /** An object deleted behind the system's back: its index entry (if any) stays. */
  lose(node: string, i: CopyItem) {
    this.objects.delete(at(node, chunkKey(i.sha256)));
    this.gone.add(at(node, i.sha256));
  }

  /** The digests indexed at a node, sorted. */
  indexedAt = (node: string) =>
    [...this.index.keys()]
      .filter((k) => k.startsWith(`${node}/`))
      .map((k) => k.slice(node.length + 1))
      .sort();
  copies = () => this.log.filter((l) => l.startsWith('copy '));
  heads = (digest: string, node = 'nrt') => this.log.filter((l) => l === `head ${node} ${digest}`).length;
  claimsTaken = () => this.log.filter((l) => l.startsWith('claim '));
  touches = () => this.log.filter((l) => l.startsWith('touch '));
  removals = () => this.log.filter((l) => l.startsWith('remove '));
  tocs = () => this.log.filter((l) => l.startsWith('toc '));
  /** The migration's updates other than the legs' progress: index healing and lost chunks. */
  healing = () =>
    this.updates.filter((u) =>
      (u.increment as [string[], number][]).some(([p]) => p[0] === 'chunksLost' || p[0] === 'chunksHealed'),
    );
  legUpdates = () =>
    this.updates.filter((u) => (u.increment as [string[], number][]).some(([p]) => p[0] === 'legs'));
}

let w: World;
beforeEach(() => {
  w = new World();
  w.statuses.set(ME, 'REPLICATING');
  w.statuses.set(OTHER, 'REPLICATING');
});

describe('copy claims', () => {
  it('copies what nobody else is copying, verified, recorded, and gives the claims back', async () => {
    const items = [item(1), item(2), item(3, 'sin')];
    expect(await w.run(ME, items)).toEqual({ copied: 3, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([
      `copy hkg>nrt ${sha(1)}`,
      `copy hkg>nrt ${sha(2)}`,
      `copy hkg>sin ${sha(3)}`,
    ]);
    // Looked at before (a copy may have landed before the claim) and after (verification).
    expect(w.heads(sha(1))).toBe(2);
    expect(w.indexedAt('nrt')).toEqual([sha(1), sha(2)]);
    expect(w.indexedAt('sin')).toEqual([sha(3)]);
    expect(w.claims.size).toBe(0);
    expect(w.copied.get(ME)).toEqual({ chunks: 3, bytes: 1001 + 1002 + 1003 });
    expect(w.updates).toEqual([
      {
        id: ME,
        increment: [
          [['legs', 'dc-osa', 'chunksReplicated'], 2],
          [['legs', 'dc-osa', 'bytesReplicated'], 1001 + 1002],
          [['legs', 'dc-jkt', 'chunksReplicated'], 1],
          [['legs', 'dc-jkt', 'bytesReplicated'], 1003],
        ],
      },
    ]);
  });

  it('a chunk the content index places at its node costs one HEAD and a touch, no claim and no copy', async () => {
    w.hold('nrt', item(1));
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 1, lost: 0, skipped: 1, awaited: 0 });
    expect(w.heads(sha(1))).toBe(1);
    expect(w.touches()).toEqual([`touch nrt ${sha(1)}`]);
    expect(w.claimsTaken()).toEqual([`claim nrt ${sha(2)}`]);
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(2)}`]);
    expect(w.removals()).toEqual([]);
    expect(w.healing()).toEqual([]);
    // Still counted as replicated for the leg through that node.
    expect(w.updates[0]?.increment).toContainEqual([['legs', 'dc-osa', 'chunksReplicated'], 2]);
  });

  it('awaits a chunk another live migration is copying: it counts once stored and verified, and is recorded here', async () => {
    w.claimFor(OTHER, item(1));
    // The other migration's copy lands while this one waits (its index record comes later).
    w.onSleep.push(() => {
      if (w.now > 1_000_000 + 1_000) w.objects.set(at('nrt', chunkKey(sha(1))), { size: item(1).length });
    });
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 1, lost: 0, skipped: 1, awaited: 1 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(2)}`]);
    expect(w.heads(sha(1))).toBeGreaterThanOrEqual(2);
    expect(w.index.has(at('nrt', sha(1)))).toBe(true);
    // Its claim is the other migration's to release.
    expect(w.claims.get(at('nrt', sha(1)))?.owner).toBe(OTHER);
    expect(w.updates[0]?.history).toEqual({
      event: 'copies-shared',
      message: `batch 0: 1 chunks were being copied into the same cache node by ${OTHER}: awaited, not copied twice`,
    });
  });

  it('does not count an awaited chunk that is stored with the wrong length or checksum', async () => {
    w.claimFor(OTHER, item(1), 5_000);
    w.objects.set(at('nrt', chunkKey(sha(1))), { size: 1 }); // a mismatch, e.g. a half-written object of another store
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`]);
    expect(w.objects.get(at('nrt', chunkKey(sha(1))))?.size).toBe(item(1).length);
  });

  it('a chunk indexed meanwhile by the copier stops the wait: looked at once and touched, not copied', async () => {
    w.claimFor(OTHER, item(1));
    w.onSleep.push(() => {
      w.objects.set(at('nrt', chunkKey(sha(1))), { size: item(1).length });
      w.indexAt('nrt', item(1));
      w.claims.delete(at('nrt', sha(1)));
    });
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 0, lost: 0, skipped: 1, awaited: 1 });
    expect(w.heads(sha(1))).toBe(1);
    expect(w.touches()).toEqual([`touch nrt ${sha(1)}`]);
    expect(w.copies()).toEqual([]);
  });

  it('takes over the claim of a migration that ended, and copies the chunk itself', async () => {
    w.claimFor(OTHER, item(1));
    w.statuses.set(OTHER, 'FAILED');
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`]);
    expect(w.claims.size).toBe(0); // taken over, then released
  });

  it('takes over a claim whose owner is unknown (its record gone)', async () => {
    w.claimFor(THIRD, item(1));
    expect(await w.run(ME, [item(1)])).toMatchObject({ copied: 1 });
  });

  it('takes over an expired claim of a live migration (its task has certainly ended)', async () => {
    w.claimFor(OTHER, item(1), 3_000);
    const started = w.now;
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.now - started).toBeGreaterThan(3_000);
    expect(w.now - started).toBeLessThan(15_000);
  });

  it('takes a released claim and looks before copying: a copy that landed before the claim is not made again', async () => {
    w.claimFor(OTHER, item(1));
    const deps = w.deps();
    const objectState = deps.storage.objectState.bind(deps.storage);
    let looks = 0;
    (deps.storage as { objectState: typeof objectState }).objectState = async (node, e) => {
      const state = await objectState(node, e);
      // Right after this task's first look (missing), the other copy lands and its claim is given back.
      if (e.sha256 === sha(1) && node.bucket === 'nrt' && ++looks === 1) {
        w.objects.set(at('nrt', chunkKey(sha(1))), { size: item(1).length });
        w.claims.delete(at('nrt', sha(1)));
      }
      return state;
    };
    w.hold('hkg', item(1));
    w.batches.set('p/0.json', [item(1)]);
    expect(await copyBatch(deps, { migrationId: ME, prefix: 'p', batch: 0 }, w.clock())).toEqual({
      copied: 0,
      lost: 0,
      skipped: 1,
      awaited: 1,
    });
    expect(w.copies()).toEqual([]);
    expect(w.index.has(at('nrt', sha(1)))).toBe(true);
  });

  it('a retry of its own task retakes its claims; what it copied before is recorded, not copied again', async () => {
    w.claimFor(ME, item(1));
    w.objects.set(at('nrt', chunkKey(sha(1))), { size: item(1).length });
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 0, lost: 0, skipped: 1, awaited: 0 });
    expect(w.copies()).toEqual([]);
    expect(w.index.has(at('nrt', sha(1)))).toBe(true);
    expect(w.claims.size).toBe(0);
  });

  it('past its wait it fails with CopiesPending, having recorded what it verified; the next run counts all once', async () => {
    w.claimFor(OTHER, item(1), 10 * COPY_WAIT_MS);
    const started = w.now;
    const error = await w.run(ME, [item(1), item(2)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CopiesPending);
    expect((error as Error).name).toBe('CopiesPending');
    expect((error as Error).message).toContain(OTHER);
    expect(w.now - started).toBeGreaterThanOrEqual(COPY_WAIT_MS);
    expect(w.now - started).toBeLessThan(COPY_WAIT_MS + 10_000);
    expect(w.index.has(at('nrt', sha(2)))).toBe(true);
    expect(w.claims.get(at('nrt', sha(2)))).toBeUndefined();
    expect(w.updates).toEqual([]); // progress is counted when the batch is done
    expect(w.copied.get(ME)).toEqual({ chunks: 1, bytes: 1002 }); // copies are counted as they are made

    // The state machine runs the batch again; meanwhile the other migration's copy landed.
    w.objects.set(at('nrt', chunkKey(sha(1))), { size: item(1).length });
    w.log.length = 0;
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 0, lost: 0, skipped: 2, awaited: 1 });
    expect(w.heads(sha(2))).toBe(1); // indexed by the first run: looked at and touched, not claimed
    expect(w.touches()).toEqual([`touch nrt ${sha(2)}`]);
    expect(w.claimsTaken()).not.toContain(`claim nrt ${sha(2)}`);
    expect(w.updates).toHaveLength(1);
    expect(w.updates[0]?.increment).toContainEqual([['legs', 'dc-osa', 'chunksReplicated'], 2]);
    expect(w.copied.get(ME)).toEqual({ chunks: 1, bytes: 1002 }); // not counted twice
  });

  it('a failed copy lets the others finish, records them, releases every claim, then throws', async () => {
    const items = Array.from({ length: 40 }, (_, n) => item(n + 1));
    w.failCopy.add(sha(5));
    await expect(w.run(ME, items)).rejects.toMatchObject({ name: 'InternalError' });
    expect(w.copies()).toHaveLength(40);
    // Not a missing source: no look at the source, no entry dropped, nothing counted lost.
    expect(w.heads(sha(5), 'hkg')).toBe(0);
    expect(w.removals()).toEqual([]);
    expect(w.indexedAt('nrt')).toHaveLength(39);
    expect(w.claims.size).toBe(0);
    expect(w.updates).toEqual([]);
    expect(w.copied.get(ME)?.chunks).toBe(39); // the copies made before the failure still count
  });

  it('a copy that does not verify is a TransientError (the state machine retries it)', async () => {
    w.badCopy.add(sha(1));
    await expect(w.run(ME, [item(1)])).rejects.toBeInstanceOf(TransientError);
    expect(w.indexedAt('nrt')).toEqual([]);
    expect(w.claims.size).toBe(0);
  });

  it('keeps at most COPY_CONCURRENCY copies in flight', async () => {
    await w.run(
      ME,
      Array.from({ length: 100 }, (_, n) => item(n + 1)),
    );
    expect(w.maxInFlight).toBeGreaterThan(1);
    expect(w.maxInFlight).toBeLessThanOrEqual(COPY_CONCURRENCY);
  });

  it('migrations copying the same chunks into the same node at once copy each once, and both complete', async () => {
    const items = Array.from({ length: 60 }, (_, n) => item(n + 1));
    w.statuses.set(THIRD, 'REPLICATING');
    const [a, b, c] = await Promise.all([w.run(ME, items), w.run(OTHER, items), w.run(THIRD, items)]);
    expect(w.copies()).toHaveLength(60);
    expect(new Set(w.copies()).size).toBe(60);
    expect((a?.copied ?? 0) + (b?.copied ?? 0) + (c?.copied ?? 0)).toBe(60);
    for (const r of [a, b, c]) {
      expect((r?.copied ?? 0) + (r?.skipped ?? 0)).toBe(60);
      expect(r?.lost).toBe(0);
    }
    expect(w.indexedAt('nrt')).toHaveLength(60);
    expect(w.claims.size).toBe(0);
    expect(w.updates.map((u) => u.id).sort()).toEqual([ME, OTHER, THIRD].sort());
    expect([...w.copied.values()].reduce((n, c) => n + c.chunks, 0)).toBe(60);
  });
});

describe('the content index as a cache of the truth', () => {
  it('a chunk indexed at its node but not stored there is dropped from the index, copied, and counted healed', async () => {
    w.indexAt('nrt', item(1)); // the object was deleted behind the system's back
    w.hold('nrt', item(2));
    w.objects.set(at('nrt', chunkKey(sha(2))), { size: 1 }); // indexed, but stored with the wrong length
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 2, lost: 0, skipped: 0, awaited: 0 });
    expect(w.removals()).toEqual([`remove nrt ${sha(1)}`, `remove nrt ${sha(2)}`]);
    expect(w.touches()).toEqual([]); // nothing present to mark used
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy hkg>nrt ${sha(2)}`]);
    expect(w.objects.get(at('nrt', chunkKey(sha(2))))?.size).toBe(item(2).length);
    // Recorded again once copied and verified.
    expect(w.index.has(at('nrt', sha(1)))).toBe(true);
    expect(w.index.has(at('nrt', sha(2)))).toBe(true);
    expect(w.claims.size).toBe(0);
    expect(w.healing()).toEqual([
      {
        id: ME,
        increment: [[['chunksHealed'], 2]],
        history: { event: 'index-healed', message: expect.stringContaining('2 index entries') },
      },
    ]);
    expect(JSON.stringify(w.healing()[0]?.history)).toContain(`${sha(1).slice(0, 12)}… at nrt`);
    expect(w.legUpdates()[0]?.increment).toContainEqual([['legs', 'dc-osa', 'chunksReplicated'], 2]);
  });

  it.each([
    ['404 NoSuchKey', false],
    ['403 AccessDenied (no ListBucket on the source)', true],
  ])(
    'a planned source that lacks the chunk (%s) is dropped; the next nearest holder is copied from',
    async (_, denyMissing) => {
      w.denyMissing = denyMissing;
      // Planned from sin, which lost it; hkg holds it too.
      const i: CopyItem = { ...item(1), from: 'sin' };
      w.indexAt('sin', i);
      w.lose('sin', i);
      w.hold('hkg', i);
      expect(await w.run(ME, [i])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
      expect(w.copies()).toEqual([`copy sin>nrt ${sha(1)}`, `copy hkg>nrt ${sha(1)}`]);
      // The failed copy is told from any other refusal by a look at the source.
      expect(w.heads(sha(1), 'sin')).toBe(1);
      expect(w.removals()).toEqual([`remove sin ${sha(1)}`]);
      expect(w.index.has(at('sin', sha(1)))).toBe(false);
      expect(w.index.has(at('nrt', sha(1)))).toBe(true);
      expect(w.claims.size).toBe(0);
      expect(w.copied.get(ME)).toEqual({ chunks: 1, bytes: 1001 });
      expect(w.healing()).toEqual([
        {
          id: ME,
          increment: [[['chunksHealed'], 1]],
          history: {
            event: 'index-healed',
            message: expect.stringContaining('copied from other cache nodes'),
          },
        },
      ]);
      expect(w.legUpdates()[0]?.increment).toContainEqual([['legs', 'dc-osa', 'chunksReplicated'], 1]);
    },
  );

  it('tries the other holders nearest to the destination first, and skips one whose object is gone too', async () => {
    // A check of a chunk the plan found at its destination (nrt), which lost it: hkg and sin hold it, hkg nearer.
    const check: CopyItem = { ...item(1), from: 'nrt', verify: true };
    w.indexAt('nrt', check);
    w.hold('hkg', check);
    w.hold('sin', check);
    expect(await w.run(ME, [check])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`]);

    // Again, with hkg's copy gone as well: its entry goes, and sin is next.
    w.objects.delete(at('nrt', chunkKey(sha(1))));
    w.lose('hkg', check);
    w.log.length = 0;
    w.updates.length = 0;
    expect(await w.run(ME, [check])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy sin>nrt ${sha(1)}`]);
    expect(w.removals()).toEqual([`remove nrt ${sha(1)}`, `remove hkg ${sha(1)}`]);
    expect(w.healing()[0]?.increment).toEqual([[['chunksHealed'], 2]]);
    // A check is not progress: the chunk counted when the plan was made.
    expect(w.legUpdates()).toEqual([]);
  });

  it('a holder whose cache node is down is not copied from', async () => {
    w.lose('hkg', item(1));
    w.hold('sin', item(1));
    w.nodeStatus.set('sin', 'down');
    expect(await w.run(ME, [item(1)])).toMatchObject({ copied: 0, lost: 1 });
    // The planned source no longer indexes it (evicted since the plan): where it was stored there is unknown, so
    // nothing is copied from it; sin, down, is not asked.
    expect(w.copies()).toEqual([]);
    // Nothing was indexed wrongly (the planned source had no entry): lost, none healed.
    expect(w.healing().map((u) => u.increment)).toEqual([[[['chunksLost'], 1]]]);
  });

  it('a chunk no cache node holds any more is lost: not recorded, not progress, counted on the migration', async () => {
    w.indexAt('hkg', item(1));
    w.lose('hkg', item(1));
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 1, lost: 1, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy hkg>nrt ${sha(2)}`]);
    expect(w.removals()).toEqual([`remove hkg ${sha(1)}`]);
    expect(w.indexedAt('hkg')).toEqual([sha(2)]);
    expect(w.indexedAt('nrt')).toEqual([sha(2)]);
    expect(w.claims.size).toBe(0);
    expect(w.copied.get(ME)).toEqual({ chunks: 1, bytes: 1002 });
    expect(w.healing()).toEqual([
      {
        id: ME,
        increment: [
          [['chunksLost'], 1],
          [['chunksHealed'], 1],
        ],
        history: {
          event: 'chunks-lost',
          message: expect.stringContaining(
            '1 chunks no cache node holds any more: the source uploads them again',
          ),
        },
      },
    ]);
    expect(w.legUpdates()).toEqual([
      {
        id: ME,
        increment: [
          [['legs', 'dc-osa', 'chunksReplicated'], 1],
          [['legs', 'dc-osa', 'bytesReplicated'], 1002],
        ],
      },
    ]);
  });

  it('a check of a chunk present at its node costs a HEAD and a touch, no claim and no copy, and is not progress', async () => {
    const check: CopyItem = { ...item(1), from: 'nrt', verify: true };
    w.hold('nrt', check);
    expect(await w.run(ME, [check, item(2)])).toEqual({ copied: 1, lost: 0, skipped: 1, awaited: 0 });
    expect(w.heads(sha(1))).toBe(1);
    expect(w.touches()).toEqual([`touch nrt ${sha(1)}`]);
    expect(w.claimsTaken()).toEqual([`claim nrt ${sha(2)}`]);
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(2)}`]);
    expect(w.healing()).toEqual([]);
    expect(w.legUpdates()).toEqual([
      {
        id: ME,
        increment: [
          [['legs', 'dc-osa', 'chunksReplicated'], 1],
          [['legs', 'dc-osa', 'bytesReplicated'], 1002],
        ],
      },
    ]);
  });

  it('a chunk the collector is deleting at the destination is not recorded: TransientError, claims released', async () => {
    // Being deleted at nrt: no holder there (its object already removed), and nothing may record it.
    w.indexAt('nrt', item(1));
    w.deleting.add(at('nrt', sha(1)));
    const error = await w.run(ME, [item(1), item(2)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toContain(`${sha(1).slice(0, 12)}… at nrt`);
    expect(w.touches()).toEqual([]);
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy hkg>nrt ${sha(2)}`]);
    expect(w.deleting.has(at('nrt', sha(1)))).toBe(true);
    expect(w.index.has(at('nrt', sha(2)))).toBe(true);
    expect(w.claims.size).toBe(0);
    expect(w.updates).toEqual([]); // progress is counted when the batch is done
  });

  it('a chunk whose deletion begins between the index read and the touch is not counted: TransientError', async () => {
    w.hold('nrt', item(1));
    const deps = w.deps();
    const locate = deps.contentIndex.locate.bind(deps.contentIndex);
    (deps.contentIndex as { locate: typeof locate }).locate = async (node, digests) => {
      const out = await locate(node, digests);
      if (node === 'nrt') w.deleting.add(at('nrt', sha(1))); // the collector, meanwhile
      return out;
    };
    w.hold('hkg', item(1));
    w.batches.set('p/0.json', [item(1)]);
    const error = await copyBatch(deps, { migrationId: ME, prefix: 'p', batch: 0 }, w.clock()).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TransientError);
    expect(w.touches()).toEqual([`touch nrt ${sha(1)}`]);
    // Not marked used, it went on to be claimed and looked at; still stored, it was not copied, but its record was
    // refused: the batch runs again once the collector has finished or reverted the deletion.
    expect(w.claimsTaken()).toEqual([`claim nrt ${sha(1)}`]);
    expect(w.copies()).toEqual([]);
    expect(w.claims.size).toBe(0);
    expect(w.updates).toEqual([]);
  });

  it('a copy refused with a 403 while the source holds the chunk is an error, not a lost chunk', async () => {
    w.indexAt('hkg', item(1));
    w.denyCopy.add(sha(1));
    await expect(w.run(ME, [item(1), item(2)])).rejects.toMatchObject({
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    expect(w.heads(sha(1), 'hkg')).toBe(1);
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy hkg>nrt ${sha(2)}`]);
    expect(w.removals()).toEqual([]);
    expect(w.index.has(at('hkg', sha(1)))).toBe(true);
    expect(w.index.has(at('nrt', sha(2)))).toBe(true);
    expect(w.claims.size).toBe(0);
    expect(w.healing()).toEqual([]);
  });
});

describe('packs', () => {
  /** Chunks 1-4 in one pack at hkg; the batch copies 1 and 2 to nrt and 3 to sin. */
  const pack = () => packOf([item(1), item(2), item(3), item(4)]);

  it('copies a pack once per node for all its items, and records every chunk in it at the node', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    const items = [item(1), item(2), item(3, 'sin')];
    expect(await w.run(ME, items)).toEqual({ copied: 3, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${p.sha256}`, `copy hkg>sin ${p.sha256}`]);
    // Looked at before the copy and after it, and its table of contents read at the node: once for both items.
    expect(w.heads(p.sha256)).toBe(2);
    expect(w.tocs()).toEqual([`toc nrt ${p.sha256}`, `toc sin ${p.sha256}`]);
    // All four chunks, where they are in the pack: the node's usage counts the whole pack.
    for (const node of ['nrt', 'sin']) {
      expect(w.indexedAt(node)).toEqual([sha(1), sha(2), sha(3), sha(4)]);
      for (const e of p.entries) expect(w.index.get(at(node, e.sha256))).toEqual(e);
    }
    expect(w.claims.size).toBe(0);
    // Copies counted as chunks of the batch, and as the bytes the copies moved: each pack whole, as stored.
    expect(w.copied.get(ME)).toEqual({ chunks: 3, bytes: 2 * p.size });
    // Progress counts the chunks' own (uncompressed) bytes.
    expect(w.legUpdates()[0]?.increment).toEqual([
      [['legs', 'dc-osa', 'chunksReplicated'], 2],
      [['legs', 'dc-osa', 'bytesReplicated'], 1001 + 1002],
      [['legs', 'dc-jkt', 'chunksReplicated'], 1],
      [['legs', 'dc-jkt', 'bytesReplicated'], 1003],
    ]);

    // Another batch of the image needs chunk 4 at nrt: recorded with the pack, it costs a HEAD and a touch.
    w.log.length = 0;
    expect(await w.run(ME, [item(4)])).toEqual({ copied: 0, lost: 0, skipped: 1, awaited: 0 });
    expect(w.copies()).toEqual([]);
    expect(w.touches()).toEqual([`touch nrt ${sha(4)}`]);
  });

  it('locates a chunk at its source: a chunk stored alone there is copied alone', async () => {
    // At hkg chunk 1 is in a pack, chunk 2 stored alone (written before packs).
    w.holdPack('hkg', packOf([item(1)]));
    w.hold('hkg', item(2));
    expect(await w.run(ME, [item(1), item(2)])).toMatchObject({ copied: 2 });
    expect(w.copies().sort()).toEqual(
      [`copy hkg>nrt ${packOf([item(1)]).sha256}`, `copy hkg>nrt ${sha(2)}`].sort(),
    );
    expect(w.index.get(at('nrt', sha(2)))).toEqual({ sha256: sha(2), length: item(2).length });
    expect(w.index.get(at('nrt', sha(1)))?.pack).toBe(packOf([item(1)]).sha256);
  });

  it('a pack already at the node (copied by a migration that did not record it) is recorded, not copied', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    w.holdPack('nrt', p, false);
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 0, lost: 0, skipped: 2, awaited: 0 });
    expect(w.copies()).toEqual([]);
    expect(w.indexedAt('nrt')).toEqual([sha(1), sha(2), sha(3), sha(4)]);
    expect(w.copied.get(ME)).toBeUndefined();
  });

  it('a chunk the node holds in another object keeps its entry there', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    w.hold('nrt', item(3)); // stored alone at nrt before packs
    await w.run(ME, [item(1)]);
    expect(w.index.get(at('nrt', sha(3)))).toEqual({ sha256: sha(3), length: item(3).length });
    expect(w.index.get(at('nrt', sha(4)))?.pack).toBe(p.sha256);
  });

  it('the pack of an indexed chunk is looked at once for all its chunks; a missing pack drops them all', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    w.holdPack('nrt', p);
    const checks = [1, 2, 3].map((n): CopyItem => ({ ...item(n), from: 'nrt', verify: true }));
    expect(await w.run(ME, checks)).toMatchObject({ copied: 0, skipped: 3 });
    expect(w.heads(p.sha256)).toBe(1);

    // Deleted behind the index: every entry naming it goes, and the pack is copied again from hkg, once.
    w.objects.delete(at('nrt', packKey(p.sha256)));
    w.log.length = 0;
    expect(await w.run(ME, checks)).toMatchObject({ copied: 3, lost: 0 });
    expect(w.removals()).toEqual([1, 2, 3].map((n) => `remove nrt ${sha(n)}`));
    expect(w.copies()).toEqual([`copy hkg>nrt ${p.sha256}`]);
    expect(w.indexedAt('nrt')).toEqual([sha(1), sha(2), sha(3), sha(4)]);
  });

  it('a source that lacks the pack is looked at once; every item of it goes to the next holder', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    w.objects.delete(at('hkg', packKey(p.sha256)));
    // sin holds the same chunks in a pack of its own.
    const q = packOf([item(1), item(2)], 0xcafe);
    w.holdPack('sin', q);
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 2, lost: 0, skipped: 0, awaited: 0 });
    expect(w.heads(p.sha256, 'hkg')).toBe(1);
    expect(w.copies()).toEqual([`copy hkg>nrt ${p.sha256}`, `copy sin>nrt ${q.sha256}`]);
    expect(w.removals()).toEqual([`remove hkg ${sha(1)}`, `remove hkg ${sha(2)}`]);
    expect(w.index.get(at('nrt', sha(1)))?.pack).toBe(q.sha256);
    expect(w.healing()[0]?.increment).toEqual([[['chunksHealed'], 2]]);
  });

  it('copies are claimed per pack: chunks of a pack another migration is copying are awaited, copied once', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    // Another migration copies p into nrt for chunks of its own; its copy lands while this one waits.
    w.claims.set(at('nrt', p.sha256), { owner: OTHER, expiresAt: w.now + COPY_CLAIM_TTL_SECONDS * 1000 });
    w.onSleep.push(() => w.holdPack('nrt', p, false));
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 0, lost: 0, skipped: 2, awaited: 2 });
    expect(w.copies()).toEqual([]);
    expect(w.claims.get(at('nrt', p.sha256))?.owner).toBe(OTHER);
  });

  it('the pack of an awaited chunk, landed but not recorded by its copier, counts once verified', async () => {
    const p = pack();
    w.holdPack('hkg', p);
    w.claims.set(at('nrt', p.sha256), { owner: OTHER, expiresAt: w.now + COPY_CLAIM_TTL_SECONDS * 1000 });
    w.onSleep.push(() => w.holdPack('nrt', p, false));
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 0, lost: 0, skipped: 1, awaited: 1 });
    expect(w.copies()).toEqual([]);
    expect(w.indexedAt('nrt')).toEqual([sha(1), sha(2), sha(3), sha(4)]);
  });

  it('a chunk of the pack the collector is deleting at the node refuses the record: TransientError', async () => {
    // The pack was at nrt, its chunk 4 indexed there and being deleted by the collector (the object already gone).
    const p = pack();
    w.holdPack('hkg', p);
    w.index.set(at('nrt', sha(4)), p.entries[3] as PackEntry);
    w.deleting.add(at('nrt', sha(4)));
    const error = await w.run(ME, [item(1)]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as Error).message).toContain(`${sha(4).slice(0, 12)}… at nrt`);
    expect(w.claims.size).toBe(0);
  });

  it('a source entry naming a pack without the chunk is dropped, and the next holder tried', async () => {
    const p = packOf([item(2)]);
    w.holdPack('hkg', p);
    // hkg's entry of chunk 1 says it is in p: wrong.
    w.index.set(at('hkg', sha(1)), {
      ...(p.entries[0] as PackEntry),
      sha256: sha(1),
      length: item(1).length,
    });
    w.hold('sin', item(1));
    expect(await w.run(ME, [item(1)])).toMatchObject({ copied: 1, lost: 0 });
    expect(w.removals()).toEqual([`remove hkg ${sha(1)}`]);
    expect(w.copies()).toEqual([`copy hkg>nrt ${p.sha256}`, `copy sin>nrt ${sha(1)}`]);
  });
});
