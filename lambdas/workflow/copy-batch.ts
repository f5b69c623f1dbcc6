// CMN copy task: server-side copies of one batch of chunks into destination cache nodes, bounded in parallel.
//
// A chunk is stored in an object (protocol/chunk-key.ts objectKeyOf): a pack of many chunks, or (stored before
// packs) its own object. A copy is a copy of the object the chunk's index entry names at the source node (where a
// chunk is stored can differ per node), so one copy brings every chunk of a pack: each object is copied into a node
// at most once per round however many items of the batch it holds. Once a pack is at its node (copied, or found
// there) its table of contents is read there, which also proves the copy is in place, and every chunk in it is
// recorded at the node (see recordArrivals), not only the batch's: the node's usage counts the whole pack, and later
// migrations find those chunks there.
//
// Migrations that copy the same chunk into the same cache node at once (clones of one base, a batch) copy it once.
// Before copying, the task takes a copy claim per (node, object) in the content index (a pack, or a chunk stored
// alone: what one copy moves, so migrations needing different chunks of one pack copy it once). A chunk another live
// migration has claimed is awaited: it counts once the object its source entry names is stored at the node and
// verified, as our own copies are (HEAD: length and SHA-256 checksum; a pack's table of contents), and is then
// recorded in the content index here too. A claim is taken over when it is released without the chunk, expires
// (COPY_CLAIM_TTL_SECONDS: the claiming invocation has certainly ended), or belongs to a migration that ended. Past
// COPY_WAIT_MS the task fails with CopiesPending and the state machine runs the batch again, so nothing depends on
// the other migration finishing.
//
// The content index is a cache of the truth (DESIGN §3). A chunk it places at its destination node is looked at
// (HEAD of the object its entry there names) and marked used there; one found missing is dropped from the index and
// copied like any other. A copy whose source turns out not to hold the object drops that entry and tries the next
// nearest holder; a chunk no node holds any more is counted lost on the migration (lost-chunks.ts) and the source
// uploads it again. Any other chunk is looked at after its claim is taken and before it is copied: a copy that
// landed before the claim (the previous holder's, a standing replication's) is not made again. Every copy is
// verified before it is recorded.
import type { S3ServiceException } from '@aws-sdk/client-s3';
import { TERMINAL_STATUSES } from '../../protocol/api/migrations.ts';
import { objectKeyOf } from '../../protocol/chunk-key.ts';
import { bucketRef } from '../aws/cache-nodes.ts';
import type { IndexedChunk } from '../aws/content-index.ts';
import type { DepsOf, Uses } from '../aws/deps.ts';
import { mapLimit, settleAll } from '../domain/concurrency.ts';
import { type CopyItem, replicationBatchKey } from '../domain/control-keys.ts';
import { byDistance } from '../domain/geo.ts';
import type { CacheNodeRecord } from '../domain/registry.ts';
import { objectStates, packBytes } from '../domain/stored-objects.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { recordLost } from './lost-chunks.ts';
import { TaskFailure, TransientError, task } from './task.ts';

export const COPY_CONCURRENCY = 16;
/**
 * How long one invocation waits for chunks other migrations are copying, counted from its start. The ASL gives
 * CopyBatch 900 s and its Lambda stops at 890 s; the rest is room for the last round's own copies. The ASL retries
 * CopiesPending on a retrier of its own (transient errors keep their budget) over a span well beyond
 * COPY_CLAIM_TTL_SECONDS, by when every claim this invocation saw has expired and is taken over.
 */
export const COPY_WAIT_MS = 300_000;
/** Between looks at awaited chunks: doubling from the first, up to the last, with jitter. */
export const COPY_POLL_MS: readonly [number, number] = [250, 5_000];

/** Chunks other migrations are still copying when this invocation's wait is over: the batch runs again. */
export class CopiesPending extends Error {
  override readonly name = 'CopiesPending';
}

export interface CopyBatchEvent {
  readonly migrationId: string;
  readonly prefix: string;
  readonly batch: number;
}

export interface CopyBatchResult {
  /** Chunks of the batch brought to their node by copies this task made. */
  readonly copied: number;
  /** Chunks no cache node holds any more: the source uploads them again. */
  readonly lost: number;
  /** Chunks it did not copy: already at their node (indexed or found there), or copied by another migration. */
  readonly skipped: number;
  /** Of `skipped`: chunks another migration held the claim of, awaited until they were stored. */
  readonly awaited: number;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const keyOf = (i: CopyItem) => `${i.to}/${i.sha256}`;

function byTarget<T extends { readonly to: string }>(items: Iterable<T>): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const i of items) {
    const list = out.get(i.to) ?? [];
    list.push(i);
    out.set(i.to, list);
  }
  return out;
}

/** An object at a destination node this round (copied, or found there), verified. */
interface Arrival {
  readonly to: string;
  /** The chunks in it, where each is stored in it: a pack's table of contents read there, or the chunk alone. */
  readonly entries: readonly IndexedChunk[];
  readonly digests: ReadonlySet<string>;
  /** This task copied it (it was not there before): its bytes as stored. */
  readonly copiedBytes?: number;
}

export type CopyBatchDeps = DepsOf<typeof TASK_FUNCTIONS.copyBatch.needs>;

export async function copyBatch(
  deps: CopyBatchDeps,
  event: CopyBatchEvent,
  clock: Clock = realClock,
): Promise<CopyBatchResult> {
  const started = clock.now();
  const me = event.migrationId;
  const items = await deps.storage.getJson<CopyItem[]>(
    deps.control,
    replicationBatchKey(event.prefix, event.batch),
  );
  if (!items)
    throw new TaskFailure(
      'PlanMissing',
      `replication batch ${event.batch} of ${event.migrationId} is missing`,
    );
  const registered = await deps.registry.allCacheNodes();
  const nodes = new Map(registered.map((n) => [n.id, bucketRef(n)]));
  const ref = (id: string) => {
    const node = nodes.get(id);
    if (!node) throw new TaskFailure('CacheNodeGone', `cache node ${id} is no longer registered`);
    return node;
  };
  /** Index entries found wrong (the object is not there) and dropped, and the chunks held nowhere now. */
  let healed = 0;
  const lostHere = new Set<string>();
  const dropped: string[] = [];
  /** Other usable holders of a chunk than `tried` and its target, nearest to the target first. */
  const otherHolders = async (item: CopyItem, tried: readonly string[]): Promise<string[]> => {
    const others = registered.filter((n) => n.status !== 'down' && n.id !== item.to && !tried.includes(n.id));
    const held = (
      await deps.contentIndex.holders(
        [item.sha256],
        others.map((n) => n.id),
      )
    ).get(item.sha256);
    const target = registered.find((n) => n.id === item.to) as CacheNodeRecord;
    return byDistance(
      target.location,
      others.filter((n) => held?.has(n.id)),
    ).map((d) => d.node.id);
  };
  /**
   * Records on the migration what this run healed (and, when the batch is done, what it found lost): a run that
   * fails keeps its healed count (its re-run finds those entries gone), and lost chunks are counted once, by the run
   * that completes the batch.
   */
  const reportHealing = async (done: boolean) => {
    const lost = done ? lostHere.size : 0;
    if (healed === 0 && lost === 0) return;
    const parts: string[] = [];
    if (healed > 0)
      parts.push(
        `${healed} index entries named chunks their cache node did not store ` +
          `(${dropped.join(', ')}${healed > dropped.length ? ', …' : ''}): dropped`,
      );
    if (lost > 0) parts.push(`${lost} chunks no cache node holds any more: the source uploads them again`);
    else parts.push('the chunks were copied from other cache nodes');
    await recordLost(deps, me, lost, `batch ${event.batch}: ${parts.join('; ')}`, healed);
    healed = 0;
    dropped.length = 0;
  };
  const drop = async (node: string, sha256: string) => {
    if (await deps.contentIndex.remove(node, sha256)) {
      healed++;
      if (dropped.length < 5) dropped.push(`${sha256.slice(0, 12)}… at ${node}`);
    }
  };

  const pending = new Map(items.map((i) => [keyOf(i), i]));
  let copied = 0;
  let skipped = 0;
  let awaited = 0;
  /** Migrations whose claims this task waited on, and the items they held. */
  const awaitedFrom = new Set<string>();
  const waitedOn = new Set<string>();
  /** Chunks of the batch brought by copies in the current round, recorded on the migration at its end. */
  let copiedInRound = 0;
  /** An item is at its node: copied here, or found there (copied by another migration when it held the claim). */
  const settle = (i: CopyItem, how: 'copied' | 'found' | 'lost') => {
    pending.delete(keyOf(i));
    if (how === 'lost') {
      lostHere.add(i.sha256);
      return;
    }
    if (how === 'copied') {
      copied++;
      copiedInRound++;
    } else {
      skipped++;
      if (waitedOn.has(keyOf(i))) awaited++;
    }
  };
  /** Claim holders found ended (a terminal status is sticky). */
  const ended = new Set<string>();

  const endedAmong = async (owners: Iterable<string>) => {
    const unknown = [...new Set(owners)].filter((o) => o !== me && !ended.has(o));
    if (unknown.length === 0) return;
    const found = new Map((await deps.migrations.getMany(unknown)).map((m) => [m.id, m]));
    for (const o of unknown) {
      const m = found.get(o);
      if (!m || TERMINAL_STATUSES.includes(m.status)) ended.add(o);
    }
  };

  try {
    for (let round = 0; ; round++) {
      // What the content index places at its node: the object its entry there names is looked at (HEAD, once per
      // object), and the chunk marked used there. Found missing, the entry goes and the chunk is copied like any
      // other.
      for (const [to, list] of byTarget(pending.values())) {
        const located = await deps.contentIndex.locate(
          to,
          list.map((i) => i.sha256),
        );
        const indexed = list.flatMap((item) => {
          const entry = located.get(item.sha256);
          return entry ? [{ item, entry }] : [];
        });
        const states = await objectStates(
          indexed.map((x) => x.entry),
          COPY_CONCURRENCY,
          (e) => deps.storage.objectState(ref(to), e),
        );
        const present: CopyItem[] = [];
        for (const [n, { item }] of indexed.entries()) {
          if (states[n] === 'present') present.push(item);
          else await drop(to, item.sha256);
        }
        // A chunk the collector began deleting cannot be marked used: it stays pending; its record is refused until
        // the collector is done (the batch then runs again).
        const touched = await deps.contentIndex.touch(
          to,
          present.map((i) => i.sha256),
        );
        for (const i of present) if (touched.has(i.sha256)) settle(i, 'found');
      }
      if (pending.size === 0) break;

      /** Claims held in this round, by node; all released at its end, whatever happens. */
      const claimed = new Map<string, string[]>();
      /** Objects at their node this round, by `node object-key`: recorded in the content index at its end. */
      const arrivals = new Map<string, Promise<Arrival | undefined>>();
      /** Chunks the collector is deleting where they arrived: the batch runs again. */
      const evicting: string[] = [];
      /** Where the chunks are stored at their sources (`node/sha256`; null: not indexed there). */
      const sources = new Map<string, IndexedChunk | null>();
      /** Copies that failed this round, by `node object-key source`. */
      const failedCopies = new Map<string, unknown>();
      /** Packs found missing at a source this round (`node pack`): every entry there naming them is dropped once. */
      const lostAtSource = new Set<string>();
      /** Whether a source lacks an object, by `node object-key` (one look for the items of a pack). */
      const lacking = new Map<string, Promise<boolean>>();

      const sourceEntry = async (from: string, sha256: string): Promise<IndexedChunk | undefined> => {
        const key = `${from}/${sha256}`;
        if (!sources.has(key))
          sources.set(key, (await deps.contentIndex.locate(from, [sha256])).get(sha256) ?? null);
        return sources.get(key) ?? undefined;
      };
      /**
       * The object `src` names, at node `to`: looked at (HEAD) and, when it is not there, copied from `from` (none:
       * only looked at) and looked at again; a pack's table of contents is then read there. One look and at most one
       * copy per object and round, whatever the number of items it holds.
       */
      const arrive = (to: string, src: IndexedChunk, from?: string): Promise<Arrival | undefined> => {
        const key = `${to} ${objectKeyOf(src)}`;
        const known = arrivals.get(key);
        if (known) return known;
        if (from !== undefined && failedCopies.has(`${key} ${from}`))
          return Promise.reject(failedCopies.get(`${key} ${from}`));
        const arrival = (async (): Promise<Arrival | undefined> => {
          const node = ref(to);
          let copiedHere = false;
          if ((await deps.storage.objectState(node, src)) !== 'present') {
            if (from === undefined) return undefined;
            await deps.storage.copyObject(ref(from), node, src);
            copiedHere = true;
            const state = await deps.storage.objectState(node, src);
            if (state !== 'present')
              throw new TransientError(`copy of ${objectKeyOf(src)} to ${to} is ${state}`);
          }
          let entries: readonly IndexedChunk[];
          let bytes: number;
          if (src.pack === undefined) {
            entries = [{ sha256: src.sha256, length: src.length }];
            bytes = src.length;
          } else {
            const toc = await deps.storage.packToc(node, src.pack);
            if (toc === undefined)
              throw new TransientError(`pack ${src.pack} is gone from ${to} once verified`);
            entries = toc;
            bytes = packBytes(toc);
          }
          return {
            to,
            entries,
            digests: new Set(entries.map((e) => e.sha256)),
            ...(copiedHere ? { copiedBytes: bytes } : {}),
          };
        })();
        arrivals.set(key, arrival);
        // Only arrivals stay: a look that found nothing, or a failed copy, may be tried again from another source;
        // a copy that failed from one source is not tried again from it in this round (the other items of the pack
        // get the same failure at once: the state machine's retry, with its backoff, is the next try).
        const forget = () => {
          if (arrivals.get(key) === arrival) arrivals.delete(key);
        };
        arrival.then(
          (a) => a === undefined && forget(),
          (err: unknown) => {
            forget();
            if (from !== undefined) failedCopies.set(`${key} ${from}`, err);
          },
        );
        return arrival;
      };
      /**
       * A copy failed: is it because the source does not hold the object? S3 answers a missing copy source with 404
       * NoSuchKey to a caller that may list the source bucket, 403 AccessDenied otherwise; a HEAD at the source
       * tells a missing object from any other refusal.
       */
      const sourceLacks = async (from: string, src: IndexedChunk, err: unknown): Promise<boolean> => {
        const status = (err as S3ServiceException).$metadata?.httpStatusCode;
        const name = (err as Error).name;
        if (name !== 'NoSuchKey' && status !== 404 && status !== 403) return false;
        const key = `${from} ${objectKeyOf(src)}`;
        let looked = lacking.get(key);
        if (!looked) {
          looked = deps.storage.objectState(ref(from), src).then((s) => s !== 'present');
          lacking.set(key, looked);
        }
        return looked;
      };

      try {
        // The sources' entries of what is planned from them, in one read per node.
        const planned = new Map<string, string[]>();
        for (const i of pending.values()) {
          if (i.verify) continue;
          const list = planned.get(i.from);
          if (list) list.push(i.sha256);
          else planned.set(i.from, [i.sha256]);
        }
        for (const [from, digests] of planned) {
          const located = await deps.contentIndex.locate(from, digests);
          for (const sha256 of digests) sources.set(`${from}/${sha256}`, located.get(sha256) ?? null);
        }

        // Copies are claimed per object (a pack, or a chunk stored alone: what one copy moves), so migrations that
        // need different chunks of one pack at one node copy it once. A check's chunk has no planned source: its
        // claim is its digest.
        const claimKey = (i: CopyItem) =>
          i.verify ? i.sha256 : (sources.get(`${i.from}/${i.sha256}`)?.pack ?? i.sha256);
        const mine: CopyItem[] = [];
        for (const [to, list] of byTarget(pending.values())) {
          let candidates = list;
          const takeOver = new Map<string, string>();
          if (round > 0) {
            // Everything still pending was claimed by another migration: has its copy landed? (The object its
            // planned source's entry names, at the node. A check's chunk has no planned source: it counts once the
            // other migration has indexed it, above.)
            const landed = await mapLimit(list, COPY_CONCURRENCY, async (i) => {
              const src = i.verify ? undefined : await sourceEntry(i.from, i.sha256);
              if (src === undefined) return false;
              return (await arrive(to, src))?.digests.has(i.sha256) === true;
            });
            const missing = list.filter((i, n) => {
              if (!landed[n]) return true;
              settle(i, 'found');
              return false;
            });
            // Still missing: take the claims that were released, expired or held by a migration that ended.
            const holders = await deps.contentIndex.copyClaimHolders(to, [...new Set(missing.map(claimKey))]);
            await endedAmong(holders.values());
            candidates = missing.filter((i) => {
              const holder = holders.get(claimKey(i));
              if (holder === undefined || holder === me) return true;
              if (!ended.has(holder)) return false;
              takeOver.set(claimKey(i), holder);
              return true;
            });
          }
          if (candidates.length === 0) continue;
          const { mine: taken, others } = await deps.contentIndex.claimCopies(
            to,
            [...new Set(candidates.map(claimKey))],
            me,
            takeOver,
          );
          claimed.set(to, [...taken]);
          for (const i of candidates) {
            if (taken.has(claimKey(i))) mine.push(i);
            else {
              awaitedFrom.add(others.get(claimKey(i)) ?? 'unknown');
              waitedOn.add(keyOf(i));
            }
          }
        }

        // Our claims: look first (a copy may have landed before the claim), copy, verify. Every copy settles before
        // the claims are given up, so none is still running when another migration takes one over.
        const results = await settleAll(
          mine,
          COPY_CONCURRENCY,
          async (item): Promise<'present' | 'copied' | 'lost'> => {
            // The planned source first; only when it lacks the chunk, the other holders (asked once).
            const tried: string[] = [];
            let askedOthers = item.verify === true;
            const candidates = item.verify ? await otherHolders(item, []) : [item.from];
            const askOthers = async () => {
              if (candidates.length > 0 || askedOthers) return;
              askedOthers = true;
              candidates.push(...(await otherHolders(item, tried)));
            };
            for (let from = candidates.shift(); from !== undefined; from = candidates.shift()) {
              tried.push(from);
              const src = await sourceEntry(from, item.sha256);
              if (src === undefined) {
                // No longer indexed there (evicted or healed since the plan): nothing to drop.
                await askOthers();
                continue;
              }
              let here: Arrival | undefined;
              try {
                // A look of the same round that found nothing is forgotten once it settles: then we copy.
                here = (await arrive(item.to, src, from)) ?? (await arrive(item.to, src, from));
              } catch (err) {
                if (!(await sourceLacks(from, src, err))) throw err;
                sources.set(`${from}/${item.sha256}`, null);
                await drop(from, item.sha256);
                if (src.pack !== undefined && !lostAtSource.has(`${from} ${src.pack}`)) {
                  // The pack is gone there: so is every chunk of this batch its entries place in it.
                  lostAtSource.add(`${from} ${src.pack}`);
                  for (const [k, e] of sources)
                    if (e?.pack === src.pack && k.startsWith(`${from}/`) && e.sha256 !== item.sha256) {
                      sources.set(k, null);
                      await drop(from, e.sha256);
                    }
                }
                await askOthers();
                continue;
              }
              if (here === undefined)
                throw new TransientError(`${objectKeyOf(src)} did not arrive at ${item.to}`);
              if (!here.digests.has(item.sha256)) {
                // The source's entry names a pack that does not hold the chunk: the entry is wrong.
                await drop(from, item.sha256);
                await askOthers();
                continue;
              }
              return here.copiedBytes !== undefined ? 'copied' : 'present';
            }
            return 'lost';
          },
        );
        let failure: { reason: unknown } | undefined;
        results.forEach((r, n) => {
          const item = mine[n] as CopyItem;
          if (r.status === 'rejected') {
            failure ??= { reason: r.reason };
            return;
          }
          settle(item, r.value === 'copied' ? 'copied' : r.value === 'lost' ? 'lost' : 'found');
        });
        if (failure) throw failure.reason;
      } finally {
        const landed = (await Promise.allSettled(arrivals.values())).flatMap((r) =>
          r.status === 'fulfilled' && r.value !== undefined ? [r.value] : [],
        );
        try {
          for (const [to, list] of byTarget(landed)) {
            for (const sha256 of await recordArrivals(deps, to, list))
              evicting.push(`${sha256.slice(0, 12)}… at ${to}`);
          }
        } finally {
          for (const [to, digests] of claimed) {
            if (digests.length === 0) continue;
            await deps.contentIndex.releaseCopies(to, digests, me).catch(() => {
              // Not released, a claim expires on its own (COPY_CLAIM_TTL_SECONDS); others wait until then at most.
            });
          }
          const bytes = landed.reduce((n, a) => n + (a.copiedBytes ?? 0), 0);
          await recordCopies(deps, me, copiedInRound, bytes);
          copiedInRound = 0;
        }
      }
      if (evicting.length > 0) {
        // The collector reverts a deletion of what a live migration references: the next run finds them held.
        throw new TransientError(
          `${evicting.length} chunks were being evicted where they were copied (${evicting.slice(0, 3).join(', ')})`,
        );
      }

      if (pending.size === 0) break;
      if (clock.now() - started >= COPY_WAIT_MS) {
        throw new CopiesPending(
          `${pending.size} chunks of batch ${event.batch} are still being copied by ` +
            `${[...awaitedFrom].join(', ') || 'other migrations'}; the batch runs again`,
        );
      }
      const [first, last] = COPY_POLL_MS;
      await clock.sleep(Math.min(last, first * 2 ** round) * (0.5 + Math.random() / 2));
    }
  } catch (err) {
    await reportHealing(false).catch(() => {});
    throw err;
  }

  await reportHealing(true);

  // Every copy not lost is now at its node: it counts for the legs that go through that node (a chunk that was
  // there already counted when the plan was made).
  const m = await deps.migrations.require(event.migrationId);
  const perNode = byTarget(items.filter((i) => !i.verify && !lostHere.has(i.sha256)));
  const increment: (readonly [readonly string[], number])[] = [];
  for (const leg of Object.values(m.legs)) {
    const list = leg.cacheNodeId ? perNode.get(leg.cacheNodeId) : undefined;
    if (!list || leg.status === 'COMPLETED') continue;
    increment.push(
      [['legs', leg.dataCenterId, 'chunksReplicated'], list.length],
      [['legs', leg.dataCenterId, 'bytesReplicated'], list.reduce((n, i) => n + i.length, 0)],
    );
  }
  const history =
    awaited > 0
      ? {
          event: 'copies-shared',
          message:
            `batch ${event.batch}: ${awaited} chunks were being copied into the same cache node by ` +
            `${[...awaitedFrom].join(', ')}: awaited, not copied twice`,
        }
      : undefined;
  if (increment.length > 0) await deps.migrations.update(m.id, { increment }, history ? { history } : {});
  else if (history) await deps.migrations.addHistory(m.id, history.event, history.message);
  return { copied, lost: lostHere.size, skipped, awaited };
}

/**
 * Records at a node the chunks of the objects that arrived there, each where it is stored in them, and returns the
 * chunks the collector is deleting there (refused). A chunk indexed there in another object keeps its entry: that
 * object may be what a destination was told to fetch, and an entry moved away would leave it named by nothing (the
 * pack then holds bytes its node's usage does not count, until the pack goes). Chunks indexed in the same pack are
 * recorded again, which marks them used and takes back a collector's mark: whoever records into a pack records all
 * its chunks, so a pack the collector is deleting refuses the record (an entry carrying `deleting`) and the batch
 * runs again, and a pack the collector has only marked is saved.
 */
async function recordArrivals(
  deps: Uses<'contentIndex'>,
  to: string,
  arrivals: readonly Arrival[],
): Promise<readonly string[]> {
  const entries = new Map<string, IndexedChunk>();
  for (const a of arrivals) for (const e of a.entries) if (!entries.has(e.sha256)) entries.set(e.sha256, e);
  if (entries.size === 0) return [];
  const held = await deps.contentIndex.locate(to, [...entries.keys()]);
  const record = [...entries.values()].filter((e) => {
    const there = held.get(e.sha256);
    return there === undefined || objectKeyOf(there) === objectKeyOf(e);
  });
  const { refused } = await deps.contentIndex.record(to, record);
  return refused;
}

/**
 * Counts copies on the migration as they are made (a run that fails after copying is counted too: its re-run
 * finds those chunks indexed and skips them). `chunks`: chunks of the batch the copies brought; `bytes`: bytes of
 * the objects copied as they are stored and as they crossed between the nodes (whole packs, compressed; a chunk
 * stored alone, its length). Statistics only: a migration that ended meanwhile keeps its count.
 */
async function recordCopies(
  deps: Uses<'migrations'>,
  migrationId: string,
  chunks: number,
  bytes: number,
): Promise<void> {
  if (chunks === 0 && bytes === 0) return;
  await deps.migrations
    .update(
      migrationId,
      {
        increment: [
          [['chunksCopied'], chunks],
          [['bytesCopied'], bytes],
        ],
      },
      { requireActive: false },
    )
    .catch(() => {});
}

export const handler = task(TASK_FUNCTIONS.copyBatch, (deps, event: CopyBatchEvent) =>
  copyBatch(deps, event),
);
