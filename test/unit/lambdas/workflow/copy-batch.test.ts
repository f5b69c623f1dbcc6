// CopyBatch's copy claims against an in-memory world (content index, claims with the conditional put's rules,
// cache node objects, migration statuses) and a virtual clock: a chunk another live migration is copying is
// awaited, verified and recorded, never copied twice; claims are taken over when released, expired or held by a
// migration that ended; past the wait the task fails with CopiesPending, having recorded what it verified and
// released its claims; progress is counted once.
//
// The index is a cache of the truth: a chunk it places at its node costs a HEAD and a touch (no claim, no copy);
// an entry found wrong is dropped and the chunk copied; a source that lacks the chunk is dropped and the next
// nearest holder tried; a chunk held nowhere is counted lost; a chunk the collector is deleting is not recorded.
import { beforeEach, describe, expect, it } from 'vitest';
import { COPY_CLAIM_TTL_SECONDS } from '../../../../lambdas/aws/content-index.ts';
import type { CopyItem } from '../../../../lambdas/domain/control-keys.ts';
import type { CacheNodeStatus } from '../../../../lambdas/domain/registry.ts';
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

/** The shared state several copy tasks see, and what they did to it. */
class World {
  now = 1_000_000;
  /** Content index entries (`node/digest`), and those of them the collector is deleting (`deleting` set). */
  readonly index = new Set<string>();
  readonly deleting = new Set<string>();
  readonly claims = new Map<string, { owner: string; expiresAt: number }>();
  readonly objects = new Map<string, number>();
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
  failCopy = new Set<string>();
  badCopy = new Set<string>();
  /** Chunks whose copy is refused with a 403 although the source holds them (a permissions problem). */
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
    const lengthOf = (digest: string) =>
      [...this.batches.values()].flat().find((i) => i.sha256 === digest)?.length ?? 0;
    const tick = () => new Promise((r) => setImmediate(r));
    const s3Error = (name: string, status: number, message: string) =>
      Object.assign(new Error(message), { name, $metadata: { httpStatusCode: status } });
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
        chunkState: async (node: { bucket: string }, digest: string, length: number) => {
          this.log.push(`head ${node.bucket} ${digest}`);
          await tick();
          const stored = this.objects.get(at(node.bucket, digest));
          return stored === undefined ? 'missing' : stored === length ? 'present' : 'mismatch';
        },
        copyChunk: async (from: { bucket: string }, to: { bucket: string }, digest: string) => {
          this.log.push(`copy ${from.bucket}>${to.bucket} ${digest}`);
          this.inFlight++;
          this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
          await tick();
          this.inFlight--;
          if (this.failCopy.has(digest))
            throw Object.assign(new Error('We encountered an internal error'), { name: 'InternalError' });
          if (this.denyCopy.has(digest)) throw s3Error('AccessDenied', 403, 'Access Denied');
          if (!this.objects.has(at(from.bucket, digest))) {
            throw this.denyMissing
              ? s3Error('AccessDenied', 403, 'Access Denied')
              : s3Error('NoSuchKey', 404, 'The specified key does not exist.');
          }
          this.objects.set(at(to.bucket, digest), this.badCopy.has(digest) ? 1 : lengthOf(digest));
        },
      },
      contentIndex: {
        holders: async (digests: string[], nodes: string[]) => {
          this.log.push(`index ${digests.length}`);
          const out = new Map<string, Set<string>>();
          for (const d of digests)
            for (const n of nodes)
              if (this.index.has(at(n, d)) && !this.deleting.has(at(n, d)))
                out.set(d, new Set([...(out.get(d) ?? []), n]));
          return out;
        },
        record: async (node: string, chunks: { sha256: string; length: number }[]) => {
          let addedBytes = 0;
          let addedChunks = 0;
          const refused: string[] = [];
          for (const c of chunks) {
            if (this.deleting.has(at(node, c.sha256))) {
              refused.push(c.sha256);
              continue;
            }
            if (this.index.has(at(node, c.sha256))) continue;
            this.index.add(at(node, c.sha256));
            addedBytes += c.length;
            addedChunks++;
          }
          return { addedBytes, addedChunks, refused };
        },
        touch: async (node: string, digests: string[]) => {
          const touched = new Set<string>();
          for (const d of digests) {
            this.log.push(`touch ${node} ${d}`);
            if (this.index.has(at(node, d)) && !this.deleting.has(at(node, d))) touched.add(d);
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

  /** Runs a copy task; the planned source of each copy holds its chunk unless the test made it `gone`. */
  run(migrationId: string, items: CopyItem[]) {
    for (const i of items) {
      if (!i.verify && !this.gone.has(at(i.from, i.sha256))) this.objects.set(at(i.from, i.sha256), i.length);
    }
    const prefix = `migrations/${migrationId}/a1/replication`;
    this.batches.set(`${prefix}/0.json`, items);
    return copyBatch(this.deps(), { migrationId, prefix, batch: 0 }, this.clock());
  }

  claimFor(owner: string, i: CopyItem, expiresIn = COPY_CLAIM_TTL_SECONDS * 1000) {
    this.claims.set(at(i.to, i.sha256), { owner, expiresAt: this.now + expiresIn });
  }

  /** A chunk stored at a node (with its true length) and indexed there. */
  hold(node: string, i: CopyItem) {
    this.objects.set(at(node, i.sha256), i.length);
    this.index.add(at(node, i.sha256));
  }

  /** An object deleted behind the system's back: its index entry (if any) stays. */
  lose(node: string, i: CopyItem) {
    this.objects.delete(at(node, i.sha256));
    this.gone.add(at(node, i.sha256));
  }

  copies = () => this.log.filter((l) => l.startsWith('copy '));
  heads = (digest: string, node = 'nrt') => this.log.filter((l) => l === `head ${node} ${digest}`).length;
  claimsTaken = () => this.log.filter((l) => l.startsWith('claim '));
  touches = () => this.log.filter((l) => l.startsWith('touch '));
  removals = () => this.log.filter((l) => l.startsWith('remove '));
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
    expect([...w.index].sort()).toEqual([at('nrt', sha(1)), at('nrt', sha(2)), at('sin', sha(3))]);
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
      if (w.now > 1_000_000 + 1_000) w.objects.set(at('nrt', sha(1)), item(1).length);
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
    w.objects.set(at('nrt', sha(1)), 1); // a mismatch, e.g. a half-written object of another store
    expect(await w.run(ME, [item(1)])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`]);
    expect(w.objects.get(at('nrt', sha(1)))).toBe(item(1).length);
  });

  it('a chunk indexed meanwhile by the copier stops the wait: looked at once and touched, not copied', async () => {
    w.claimFor(OTHER, item(1));
    w.onSleep.push(() => {
      w.objects.set(at('nrt', sha(1)), item(1).length);
      w.index.add(at('nrt', sha(1)));
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
    const chunkState = deps.storage.chunkState.bind(deps.storage);
    let looks = 0;
    (deps.storage as { chunkState: typeof chunkState }).chunkState = async (node, digest, length) => {
      const state = await chunkState(node, digest, length);
      // Right after this task's first look (missing), the other copy lands and its claim is given back.
      if (digest === sha(1) && ++looks === 1) {
        w.objects.set(at('nrt', sha(1)), item(1).length);
        w.claims.delete(at('nrt', sha(1)));
      }
      return state;
    };
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
    w.objects.set(at('nrt', sha(1)), item(1).length);
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
    w.objects.set(at('nrt', sha(1)), item(1).length);
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
    expect(w.index.size).toBe(39);
    expect(w.claims.size).toBe(0);
    expect(w.updates).toEqual([]);
    expect(w.copied.get(ME)?.chunks).toBe(39); // the copies made before the failure still count
  });

  it('a copy that does not verify is a TransientError (the state machine retries it)', async () => {
    w.badCopy.add(sha(1));
    await expect(w.run(ME, [item(1)])).rejects.toBeInstanceOf(TransientError);
    expect(w.index.size).toBe(0);
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
    expect(w.index.size).toBe(60);
    expect(w.claims.size).toBe(0);
    expect(w.updates.map((u) => u.id).sort()).toEqual([ME, OTHER, THIRD].sort());
    expect([...w.copied.values()].reduce((n, c) => n + c.chunks, 0)).toBe(60);
  });
});

describe('the content index as a cache of the truth', () => {
  it('a chunk indexed at its node but not stored there is dropped from the index, copied, and counted healed', async () => {
    w.index.add(at('nrt', sha(1))); // the object was deleted behind the system's back
    w.hold('nrt', item(2));
    w.objects.set(at('nrt', sha(2)), 1); // indexed, but stored with the wrong length
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 2, lost: 0, skipped: 0, awaited: 0 });
    expect(w.removals()).toEqual([`remove nrt ${sha(1)}`, `remove nrt ${sha(2)}`]);
    expect(w.touches()).toEqual([]); // nothing present to mark used
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy hkg>nrt ${sha(2)}`]);
    expect(w.objects.get(at('nrt', sha(2)))).toBe(item(2).length);
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
      w.index.add(at('sin', sha(1)));
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
    w.index.add(at('nrt', sha(1)));
    w.hold('hkg', check);
    w.hold('sin', check);
    expect(await w.run(ME, [check])).toEqual({ copied: 1, lost: 0, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`]);

    // Again, with hkg's copy gone as well: its entry goes, and sin is next.
    w.objects.delete(at('nrt', sha(1)));
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
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`]);
    // Nothing was indexed wrongly (the planned source had no entry): lost, none healed.
    expect(w.healing().map((u) => u.increment)).toEqual([[[['chunksLost'], 1]]]);
  });

  it('a chunk no cache node holds any more is lost: not recorded, not progress, counted on the migration', async () => {
    w.index.add(at('hkg', sha(1)));
    w.lose('hkg', item(1));
    expect(await w.run(ME, [item(1), item(2)])).toEqual({ copied: 1, lost: 1, skipped: 0, awaited: 0 });
    expect(w.copies()).toEqual([`copy hkg>nrt ${sha(1)}`, `copy hkg>nrt ${sha(2)}`]);
    expect(w.removals()).toEqual([`remove hkg ${sha(1)}`]);
    expect([...w.index]).toEqual([at('nrt', sha(2))]);
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
    w.index.add(at('nrt', sha(1)));
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
    const holders = deps.contentIndex.holders.bind(deps.contentIndex);
    (deps.contentIndex as { holders: typeof holders }).holders = async (digests, nodes) => {
      const out = await holders(digests, nodes);
      if (nodes.length === 1 && nodes[0] === 'nrt') w.deleting.add(at('nrt', sha(1))); // the collector, meanwhile
      return out;
    };
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
    w.index.add(at('hkg', sha(1)));
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
