// CMN copy task: server-side copies of one batch of chunks into destination cache nodes, bounded in parallel.
//
// Migrations that copy the same chunk into the same cache node at once (clones of one base, a batch) copy it once.
// Before copying, the task takes a copy claim per (node, chunk) in the content index. A chunk another live
// migration has claimed is awaited: it counts once it is stored at the node and verified, as our own copies are
// (HEAD: length and SHA-256 checksum), and is then recorded in the content index here too. A claim is taken over
// when it is released without the chunk, expires (COPY_CLAIM_TTL_SECONDS: the claiming invocation has certainly
// ended), or belongs to a migration that ended. Past COPY_WAIT_MS the task fails with CopiesPending and the state
// machine runs the batch again, so nothing depends on the other migration finishing.
//
// The content index is a cache of the truth (DESIGN §3). A chunk it places at its destination node is looked at
// (HEAD) and marked used there; one found missing is dropped from the index and copied like any other. A copy
// whose source turns out not to hold the chunk drops that entry and tries the next nearest holder; a chunk no
// node holds any more is counted lost on the migration (lost-chunks.ts) and the source uploads it again. Any other
// chunk is looked at after its claim is taken and before it is copied: a copy that landed before the claim (the
// previous holder's, a standing replication's) is not made again. Every copy is verified before it is recorded.
import type { S3ServiceException } from '@aws-sdk/client-s3';
import { TERMINAL_STATUSES } from '../../protocol/api/migrations.ts';
import { bucketRef } from '../aws/cache-nodes.ts';
import type { DepsOf, Uses } from '../aws/deps.ts';
import { mapLimit, settleAll } from '../domain/concurrency.ts';
import { type CopyItem, replicationBatchKey } from '../domain/control-keys.ts';
import { byDistance } from '../domain/geo.ts';
import type { CacheNodeRecord } from '../domain/registry.ts';
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
  /** Copies this task made. */
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

function byTarget(items: Iterable<CopyItem>): Map<string, CopyItem[]> {
  const out = new Map<string, CopyItem[]>();
  for (const i of items) {
    const list = out.get(i.to) ?? [];
    list.push(i);
    out.set(i.to, list);
  }
  return out;
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
   * A copy failed: is it because the source does not hold the chunk? S3 answers a missing copy source with 404
   * NoSuchKey to a caller that may list the source bucket, 403 AccessDenied otherwise; a HEAD at the source
   * tells a missing object from any other refusal.
   */
  const sourceLacks = async (from: string, item: CopyItem, err: unknown): Promise<boolean> => {
    const status = (err as S3ServiceException).$metadata?.httpStatusCode;
    const name = (err as Error).name;
    if (name !== 'NoSuchKey' && status !== 404 && status !== 403) return false;
    return (await deps.storage.chunkState(ref(from), item.sha256, item.length)) !== 'present';
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
  /** An item is at its node: copied here, or found there (copied by another migration when it held the claim). */
  /** Copies made in the current round, recorded on the migration at its end (a failing round included). */
  let copiedInRound: CopyItem[] = [];
  const settle = (i: CopyItem, how: 'copied' | 'found' | 'lost') => {
    pending.delete(keyOf(i));
    if (how === 'lost') {
      lostHere.add(i.sha256);
      return;
    }
    if (how === 'copied') {
      copied++;
      copiedInRound.push(i);
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
      // What the content index places at its node: looked at (HEAD) and marked used there. Found missing, the entry
      // goes and the chunk is copied like any other.
      for (const [to, list] of byTarget(pending.values())) {
        const held = await deps.contentIndex.holders(
          list.map((i) => i.sha256),
          [to],
        );
        const indexed = list.filter((i) => held.get(i.sha256)?.has(to));
        const states = await mapLimit(indexed, COPY_CONCURRENCY, (i) =>
          deps.storage.chunkState(ref(to), i.sha256, i.length),
        );
        const present: CopyItem[] = [];
        for (const [n, i] of indexed.entries()) {
          if (states[n] === 'present') present.push(i);
          else await drop(to, i.sha256);
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
      /** Stored at their node and verified in this round: recorded in the content index at its end. */
      const verified: CopyItem[] = [];
      /** Of those, chunks the collector is deleting at their node right now: the batch runs again. */
      const evicting: string[] = [];
      try {
        const mine: CopyItem[] = [];
        for (const [to, list] of byTarget(pending.values())) {
          let candidates = list;
          const takeOver = new Map<string, string>();
          if (round > 0) {
            // Everything still pending was claimed by another migration: has its copy landed?
            const states = await mapLimit(list, COPY_CONCURRENCY, (i) =>
              deps.storage.chunkState(ref(to), i.sha256, i.length),
            );
            const missing = list.filter((i, n) => {
              if (states[n] !== 'present') return true;
              verified.push(i);
              settle(i, 'found');
              return false;
            });
            // Still missing: take the claims that were released, expired or held by a migration that ended.
            const holders = await deps.contentIndex.copyClaimHolders(
              to,
              missing.map((i) => i.sha256),
            );
            await endedAmong(holders.values());
            candidates = missing.filter((i) => {
              const holder = holders.get(i.sha256);
              if (holder === undefined || holder === me) return true;
              if (!ended.has(holder)) return false;
              takeOver.set(i.sha256, holder);
              return true;
            });
          }
          if (candidates.length === 0) continue;
          const { mine: taken, others } = await deps.contentIndex.claimCopies(
            to,
            candidates.map((i) => i.sha256),
            me,
            takeOver,
          );
          claimed.set(to, [...taken]);
          for (const i of candidates) {
            if (taken.has(i.sha256)) mine.push(i);
            else {
              awaitedFrom.add(others.get(i.sha256) ?? 'unknown');
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
            const to = ref(item.to);
            if ((await deps.storage.chunkState(to, item.sha256, item.length)) === 'present') return 'present';
            // The planned source first; only when it lacks the chunk, the other holders (asked once).
            const tried: string[] = [];
            let askedOthers = item.verify === true;
            const candidates = item.verify ? await otherHolders(item, []) : [item.from];
            for (let from = candidates.shift(); from !== undefined; from = candidates.shift()) {
              tried.push(from);
              try {
                await deps.storage.copyChunk(ref(from), to, item.sha256);
              } catch (err) {
                if (!(await sourceLacks(from, item, err))) throw err;
                await drop(from, item.sha256);
                if (candidates.length === 0 && !askedOthers) {
                  askedOthers = true;
                  candidates.push(...(await otherHolders(item, tried)));
                }
                continue;
              }
              const state = await deps.storage.chunkState(to, item.sha256, item.length);
              if (state !== 'present')
                throw new TransientError(`copy of chunk ${item.sha256} to ${item.to} is ${state}`);
              return 'copied';
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
          if (r.value === 'lost') {
            settle(item, 'lost');
            return;
          }
          verified.push(item);
          settle(item, r.value === 'copied' ? 'copied' : 'found');
        });
        if (failure) throw failure.reason;
      } finally {
        try {
          for (const [to, list] of byTarget(verified)) {
            const { refused } = await deps.contentIndex.record(
              to,
              list.map((i) => ({ sha256: i.sha256, length: i.length })),
            );
            for (const sha256 of refused) evicting.push(`${sha256.slice(0, 12)}… at ${to}`);
          }
        } finally {
          for (const [to, digests] of claimed) {
            if (digests.length === 0) continue;
            await deps.contentIndex.releaseCopies(to, digests, me).catch(() => {
              // Not released, a claim expires on its own (COPY_CLAIM_TTL_SECONDS); others wait until then at most.
            });
          }
          await recordCopies(deps, me, copiedInRound);
          copiedInRound = [];
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
 * Counts copies on the migration as they are made (a run that fails after copying is counted too: its re-run
 * finds those chunks indexed and skips them). Statistics only: a migration that ended meanwhile keeps its count.
 */
async function recordCopies(
  deps: Uses<'migrations'>,
  migrationId: string,
  copies: readonly CopyItem[],
): Promise<void> {
  if (copies.length === 0) return;
  await deps.migrations
    .update(
      migrationId,
      {
        increment: [
          [['chunksCopied'], copies.length],
          [['bytesCopied'], copies.reduce((n, i) => n + i.length, 0)],
        ],
      },
      { requireActive: false },
    )
    .catch(() => {});
}

export const handler = task(TASK_FUNCTIONS.copyBatch, (deps, event: CopyBatchEvent) =>
  copyBatch(deps, event),
);
