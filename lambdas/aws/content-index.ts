// The CMN content index (table ContentIndex: pk cacheNodeId, sk sha256): which cache node holds which verified
// chunk. Lookups are batched at DynamoDB's limit of 100 keys per call. The same table holds the claims that let
// concurrent migrations share work: upload claims (`#upload-claims`) and copy claims per destination cache node
// (`#copy-claims#<node>`), each with its owner migration and an expiry (`expiresAt`, also the table's TTL).
//
// Cache space (DESIGN §3): each node's partition also holds its usage item (sk `#usage`: bytes and chunks
// held, kept by every write that adds or drops an entry, and reconciled by the collector). An entry carries when
// it was stored and last used (`usedAt`, for least-recently-used eviction), and the collector's two phases:
// `condemnedAt` (a candidate since that pass; any use or new record clears it) and `deleting` (the object is being
// removed: the entry no longer counts as held, and nothing may record the chunk there until the collector
// finishes or reverts). Every transition is one conditional write on the entry, so a use and a deletion of the
// same chunk are ordered by DynamoDB: either the use wins and nothing is deleted, or the deletion wins and the
// user sees the chunk as absent.
import {
  BatchGetCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { StoredChunk } from '../../protocol/pack.ts';
import type { EvictionEntry } from '../domain/cache-space.ts';
import { mapLimit, settleAll } from '../domain/concurrency.ts';

export const BATCH_GET_LIMIT = 100;
/** Upload claims live under this pseudo cache node id: a chunk some migration is uploading right now. */
const UPLOAD_CLAIMS = '#upload-claims';
/** An upload claim outlives any sane upload; a failed uploader's claims are also taken over at once (see check-shared). */
export const CLAIM_TTL_SECONDS = 6 * 3600;
/**
 * Copy claims of a destination cache node live under `#copy-claims#<node>` (cache node ids never contain '#'): a
 * chunk some migration's CopyBatch is copying into that node right now.
 */
export const copyClaimsOf = (cacheNodeId: string) => `#copy-claims#${cacheNodeId}`;
/**
 * A copy claim lasts as long as the CopyBatch task that takes it can run (TimeoutSeconds 900 in the ASL; the Lambda
 * itself stops at 890 s): once it has expired, the invocation that took it has certainly ended.
 */
export const COPY_CLAIM_TTL_SECONDS = 900;
const CLAIM_CONCURRENCY = 16;

/**
 * A chunk as indexed at a node, with where it is stored (protocol/pack.ts). Entries written before packs have no
 * location: the chunk is its own object (chunkKey), stored raw.
 */
export type IndexedChunk = StoredChunk;

/** Bytes an entry takes at its node: its stored length (the chunk's length for a chunk stored alone). */
export const storedBytes = (c: Pick<IndexedChunk, 'length' | 'stored'>) => c.stored ?? c.length;

/** The location fields of an entry, as an item's attributes (none for a chunk stored alone). */
function locationOf(c: IndexedChunk) {
  return c.pack === undefined
    ? {}
    : { pack: c.pack, offset: c.offset ?? 0, stored: c.stored ?? c.length, encoding: c.encoding ?? 'raw' };
}

/** One entry of a node's index as the collector and `cache verify` read it. */
/** One entry of a node's index as the collector and `cache verify` read it (lambdas/domain/cache-space.ts). */
export type IndexEntry = EvictionEntry;

/** A node's usage item: what its index entries add up to. */
export interface NodeUsage {
  readonly bytesHeld: number;
  readonly chunksHeld: number;
  /** When the collector last counted the entries themselves. */
  readonly reconciledAt?: string;
}

/** The sort key of a node's usage item (chunk digests are hex: '#' sorts before every one of them). */
export const USAGE_SK = '#usage';
/** Chunk entries sort from here: every sha256 is >= '0'. */
const FIRST_DIGEST = '0';
const RECORD_CONCURRENCY = 16;

export interface RecordOutcome {
  /** Bytes and chunks new at the node (the rest were indexed there already). */
  readonly addedBytes: number;
  readonly addedChunks: number;
  /** Chunks the collector is deleting at the node right now: not recorded (the caller must not count them). */
  readonly refused: readonly string[];
}

const conditionFailed = (err: unknown) => (err as Error).name === 'ConditionalCheckFailedException';

export class ContentIndex {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * For each digest, the subset of `cacheNodeIds` that holds it. Digests held nowhere are absent. Entries the
   * collector is deleting are not holders.
   */
  async holders(
    digests: readonly string[],
    cacheNodeIds: readonly string[],
  ): Promise<Map<string, Set<string>>> {
    const keys = cacheNodeIds.flatMap((cacheNodeId) => digests.map((sha256) => ({ cacheNodeId, sha256 })));
    const result = new Map<string, Set<string>>();
    const items = await this.batchGet<{ cacheNodeId: string; sha256: string; deleting?: string }>(keys, {
      ProjectionExpression: 'cacheNodeId, sha256, deleting',
    });
    for (const item of items) {
      // Being deleted by the collector: already gone, as far as any new use is concerned.
      if (item.deleting !== undefined) continue;
      const set = result.get(item.sha256) ?? new Set<string>();
      set.add(item.cacheNodeId);
      result.set(item.sha256, set);
    }
    return result;
  }

  /**
   * The entries of these chunks at one cache node (consistent reads), with where each is stored. Chunks not held
   * there, or being deleted by the collector, are absent (`includeDeleting`: those are returned too, with their
   * `deleting`, for `cache verify`, which leaves the collector's objects alone).
   */
  async locate(
    cacheNodeId: string,
    digests: readonly string[],
    options: { readonly includeDeleting?: boolean } = {},
  ): Promise<Map<string, IndexedChunk & { readonly deleting?: string }>> {
    const keys = [...new Set(digests)].map((sha256) => ({ cacheNodeId, sha256 }));
    const result = new Map<string, IndexedChunk & { readonly deleting?: string }>();
    const items = await this.batchGet<IndexedChunk & { deleting?: string }>(keys, {
      // length, offset and stored are reserved words in expressions; the others are named alike.
      ProjectionExpression: 'sha256, #l, #p, #o, #s, #e, deleting',
      ExpressionAttributeNames: {
        '#l': 'length',
        '#p': 'pack',
        '#o': 'offset',
        '#s': 'stored',
        '#e': 'encoding',
      },
    });
    for (const item of items) {
      if (item.deleting !== undefined && !options.includeDeleting) continue;
      const { deleting, ...entry } = item;
      result.set(item.sha256, deleting !== undefined ? { ...entry, deleting } : entry);
    }
    return result;
  }

  /**
   * Records chunks as present and verified at a cache node (idempotent): one conditional put per chunk, which
   * also marks it used now and clears a collector's mark. The node's usage grows by what was new there. A chunk
   * the collector is deleting at the node is refused (its object may be gone a moment later).
   */
  async record(cacheNodeId: string, chunks: readonly IndexedChunk[]): Promise<RecordOutcome> {
    const at = this.now().toISOString();
    let addedBytes = 0;
    let addedChunks = 0;
    const refused: string[] = [];
    const results = await settleAll(chunks, RECORD_CONCURRENCY, async (c) => {
      try {
        const out = await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: {
              cacheNodeId,
              sha256: c.sha256,
              length: c.length,
              ...locationOf(c),
              storedAt: at,
              usedAt: at,
            },
            ConditionExpression: 'attribute_not_exists(deleting)',
            ReturnValues: 'ALL_OLD',
          }),
        );
        const before = out.Attributes as IndexedChunk | undefined;
        if (!before) {
          addedBytes += storedBytes(c);
          addedChunks++;
        } else if (storedBytes(before) !== storedBytes(c)) {
          // Stored again in another form (a pack where it was alone, another pack): the entry names the new one.
          addedBytes += storedBytes(c) - storedBytes(before);
        }
      } catch (err) {
        if (!conditionFailed(err)) throw err;
        refused.push(c.sha256);
      }
    });
    // What was added counts even when another put failed: the entries exist.
    if (addedChunks > 0 || addedBytes !== 0) await this.addUsage(cacheNodeId, addedBytes, addedChunks);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return { addedBytes, addedChunks, refused };
  }

  /**
   * Marks chunks used at a node now (least-recently-used order) and clears a collector's mark: one conditional
   * update each, which fails where the entry is gone or being deleted. Returns the chunks touched; the others
   * must be treated as not held there.
   */
  async touch(cacheNodeId: string, digests: readonly string[]): Promise<Set<string>> {
    const at = this.now().toISOString();
    const touched = new Set<string>();
    const results = await settleAll(digests, RECORD_CONCURRENCY, async (sha256) => {
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { cacheNodeId, sha256 },
            UpdateExpression: 'SET usedAt = :at REMOVE condemnedAt',
            ConditionExpression: 'attribute_exists(sha256) AND attribute_not_exists(deleting)',
            ExpressionAttributeValues: { ':at': at },
          }),
        );
        touched.add(sha256);
      } catch (err) {
        if (!conditionFailed(err)) throw err;
      }
    });
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return touched;
  }

  /**
   * Forgets a chunk at a cache node (its copy there turned out missing or corrupt); idempotent. The node's usage
   * shrinks by the entry's length when there was one. Returns whether an entry was removed.
   */
  async remove(cacheNodeId: string, sha256: string): Promise<boolean> {
    let out: { Attributes?: Record<string, unknown> | undefined };
    try {
      out = await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { cacheNodeId, sha256 },
          // An entry the collector is deleting is the collector's to finish.
          ConditionExpression: 'attribute_not_exists(deleting)',
          ReturnValues: 'ALL_OLD',
        }),
      );
    } catch (err) {
      if (conditionFailed(err)) return false;
      throw err;
    }
    const old = out.Attributes as IndexedChunk | undefined;
    if (!old) return false;
    await this.addUsage(cacheNodeId, -storedBytes(old), -1);
    return true;
  }

  /** One page of a node's index entries, in digest order (usage item and claims excluded). */
  async entries(
    cacheNodeId: string,
    options: { limit?: number; after?: string; upTo?: string } = {},
  ): Promise<{ items: IndexEntry[]; last?: string }> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression:
          options.upTo === undefined
            ? 'cacheNodeId = :n AND sha256 >= :first'
            : 'cacheNodeId = :n AND sha256 BETWEEN :first AND :upTo',
        ExpressionAttributeValues: {
          ':n': cacheNodeId,
          ':first': FIRST_DIGEST,
          ...(options.upTo === undefined ? {} : { ':upTo': options.upTo }),
        },
        ...(options.after ? { ExclusiveStartKey: { cacheNodeId, sha256: options.after } } : {}),
        Limit: options.limit ?? 1000,
        ConsistentRead: true,
      }),
    );
    const items = ((out.Items ?? []) as (IndexEntry & { cacheNodeId: string })[]).map(
      ({ cacheNodeId: _n, ...e }) => e,
    );
    const last = out.LastEvaluatedKey?.['sha256'] as string | undefined;
    return { items, ...(last ? { last } : {}) };
  }

  /** A node's entries, page after page, at most `max` (`partial`: there were more). */
  async allEntries(
    cacheNodeId: string,
    max = Number.POSITIVE_INFINITY,
  ): Promise<{ entries: IndexEntry[]; partial: boolean }> {
    const entries: IndexEntry[] = [];
    let after: string | undefined;
    do {
      const page = await this.entries(cacheNodeId, {
        limit: Math.min(1000, max - entries.length),
        ...(after ? { after } : {}),
      });
      entries.push(...page.items);
      after = page.last;
    } while (after && entries.length < max);
    return { entries, partial: after !== undefined };
  }

  /** A node's usage as its usage item says (zero for a node nothing was recorded at). */
  async usage(cacheNodeId: string): Promise<NodeUsage> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.table,
        Key: { cacheNodeId, sha256: USAGE_SK },
        ConsistentRead: true,
      }),
    );
    const item = out.Item as Partial<NodeUsage> | undefined;
    return {
      bytesHeld: Math.max(0, item?.bytesHeld ?? 0),
      chunksHeld: Math.max(0, item?.chunksHeld ?? 0),
      ...(item?.reconciledAt ? { reconciledAt: item.reconciledAt } : {}),
    };
  }

  /**
   * Sets a node's usage to what the collector counted in its entries, keeping what was added or dropped while it
   * counted (the usage item's change since `seen`, read before the count).
   */
  async reconcileUsage(cacheNodeId: string, counted: NodeUsage, seen: NodeUsage): Promise<NodeUsage> {
    // One atomic ADD of the difference: changes made since `seen` was read stay counted.
    const out = await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { cacheNodeId, sha256: USAGE_SK },
        UpdateExpression: 'ADD bytesHeld :b, chunksHeld :c SET reconciledAt = :at',
        ExpressionAttributeValues: {
          ':b': counted.bytesHeld - seen.bytesHeld,
          ':c': counted.chunksHeld - seen.chunksHeld,
          ':at': this.now().toISOString(),
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    const item = (out.Attributes ?? {}) as Partial<NodeUsage>;
    return {
      bytesHeld: Math.max(0, Number(item.bytesHeld ?? 0)),
      chunksHeld: Math.max(0, Number(item.chunksHeld ?? 0)),
      ...(item.reconciledAt ? { reconciledAt: item.reconciledAt } : {}),
    };
  }

  /** Keeps the collector's last report for a node on its usage item (`vmmig node ls`, the API). */
  async noteCollection(cacheNodeId: string, report: object): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { cacheNodeId, sha256: USAGE_SK },
        UpdateExpression: 'SET lastCollection = :r',
        ExpressionAttributeValues: { ':r': report },
      }),
    );
  }

  /** The collector's last report for a node, as noteCollection kept it. */
  async lastCollection<T>(cacheNodeId: string): Promise<T | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.table,
        Key: { cacheNodeId, sha256: USAGE_SK },
        ProjectionExpression: 'lastCollection',
        ConsistentRead: true,
      }),
    );
    return (out.Item as { lastCollection?: T } | undefined)?.lastCollection;
  }

  // ---- the collector's two phases (lambdas/workflow/collect-garbage.ts)

  /**
   * Phase one: marks an entry as an eviction candidate, only if it was not used or stored again since the
   * collector read it (`seen`) and is not marked already. False when it changed.
   */
  async condemn(cacheNodeId: string, seen: IndexEntry, at: string): Promise<boolean> {
    return this.conditional(
      cacheNodeId,
      seen.sha256,
      'SET condemnedAt = :at',
      'storedAt = :stored AND ' +
        (seen.usedAt === undefined ? 'attribute_not_exists(usedAt)' : 'usedAt = :used') +
        ' AND attribute_not_exists(condemnedAt) AND attribute_not_exists(deleting)',
      { ':at': at, ':stored': seen.storedAt, ...(seen.usedAt === undefined ? {} : { ':used': seen.usedAt }) },
    );
  }

  /** Takes back a mark (the chunk is referenced again). */
  async pardon(cacheNodeId: string, sha256: string, condemnedAt: string): Promise<boolean> {
    return this.conditional(cacheNodeId, sha256, 'REMOVE condemnedAt', 'condemnedAt = :c', {
      ':c': condemnedAt,
    });
  }

  /**
   * Phase two, first step: the entry stops counting as held, only if it is still marked from `condemnedAt`
   * (nobody used or recorded it since). From here nothing records the chunk at the node.
   */
  async beginDelete(cacheNodeId: string, sha256: string, condemnedAt: string, at: string): Promise<boolean> {
    return this.conditional(
      cacheNodeId,
      sha256,
      'SET deleting = :at',
      'condemnedAt = :c AND attribute_not_exists(deleting)',
      { ':at': at, ':c': condemnedAt },
    );
  }

  /** The chunk turned out referenced after all: the entry is held again, unmarked. */
  async revertDelete(cacheNodeId: string, sha256: string): Promise<boolean> {
    return this.conditional(
      cacheNodeId,
      sha256,
      'REMOVE deleting, condemnedAt',
      'attribute_exists(deleting)',
      {},
    );
  }

  /** Phase two, last step (after the object is deleted): the entry goes, and the node's usage shrinks. */
  async finishDelete(cacheNodeId: string, sha256: string): Promise<number> {
    try {
      const out = await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { cacheNodeId, sha256 },
          ConditionExpression: 'attribute_exists(deleting)',
          ReturnValues: 'ALL_OLD',
        }),
      );
      const old = out.Attributes as IndexedChunk | undefined;
      const bytes = old ? storedBytes(old) : 0;
      await this.addUsage(cacheNodeId, -bytes, -1);
      return bytes;
    } catch (err) {
      if (conditionFailed(err)) return 0;
      throw err;
    }
  }

  private async conditional(
    cacheNodeId: string,
    sha256: string,
    update: string,
    condition: string,
    values: Record<string, unknown>,
  ): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { cacheNodeId, sha256 },
          UpdateExpression: update,
          ConditionExpression: `attribute_exists(sha256) AND ${condition}`,
          ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
        }),
      );
      return true;
    } catch (err) {
      if (conditionFailed(err)) return false;
      throw err;
    }
  }

  private async addUsage(cacheNodeId: string, bytes: number, chunks: number): Promise<void> {
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { cacheNodeId, sha256: USAGE_SK },
        UpdateExpression: 'ADD bytesHeld :b, chunksHeld :c',
        ExpressionAttributeValues: { ':b': bytes, ':c': chunks },
      }),
    );
  }

  /**
   * Claims the upload of each chunk for a migration, so that migrations sharing content (clones of one base, a
   * batch) upload each shared chunk once: one conditional put per chunk. Returns the chunks now claimed by this
   * migration and, for the others, which migration holds the claim.
   */
  async claimUploads(
    digests: readonly string[],
    migrationId: string,
    takeOverFrom: ReadonlySet<string> = new Set(),
  ): Promise<{ mine: Set<string>; others: Map<string, string> }> {
    const takeOver = [...takeOverFrom];
    const { mine, others, failure } = await this.claim(
      UPLOAD_CLAIMS,
      CLAIM_TTL_SECONDS,
      digests.map((sha256) => ({ sha256, takeOver })),
      migrationId,
    );
    if (failure) throw failure.error;
    return { mine, others };
  }

  /** Who holds the upload claims of these chunks (expired claims are not returned). */
  async claimHolders(digests: readonly string[]): Promise<Map<string, string>> {
    return this.liveClaims(UPLOAD_CLAIMS, digests);
  }

  /**
   * Claims the copy of each chunk into a cache node for a migration, so that migrations copying the same chunk
   * to the same node at once (clones of one base, a batch) copy it once: one conditional put per chunk, which
   * succeeds when nobody holds the claim, this migration does, it expired, or it is held by the migration
   * `takeOverFrom` names for that chunk (one that ended). All puts settle before an error is thrown, and the
   * claims taken by then are released, so a failure leaves none behind.
   */
  async claimCopies(
    cacheNodeId: string,
    digests: readonly string[],
    migrationId: string,
    takeOverFrom: ReadonlyMap<string, string> = new Map(),
  ): Promise<{ mine: Set<string>; others: Map<string, string> }> {
    const pk = copyClaimsOf(cacheNodeId);
    const { mine, others, failure } = await this.claim(
      pk,
      COPY_CLAIM_TTL_SECONDS,
      digests.map((sha256) => {
        const owner = takeOverFrom.get(sha256);
        return { sha256, takeOver: owner === undefined ? [] : [owner] };
      }),
      migrationId,
    );
    if (failure) {
      await this.releaseCopies(cacheNodeId, [...mine], migrationId).catch(() => {
        // They expire on their own (COPY_CLAIM_TTL_SECONDS); the claim error is the one to report.
      });
      throw failure.error;
    }
    return { mine, others };
  }

  /** Who holds the copy claims of these chunks at a cache node (expired claims are not returned). */
  async copyClaimHolders(cacheNodeId: string, digests: readonly string[]): Promise<Map<string, string>> {
    return this.liveClaims(copyClaimsOf(cacheNodeId), digests);
  }

  /** Gives up this migration's copy claims (a claim another migration took over in the meantime stays). */
  async releaseCopies(cacheNodeId: string, digests: readonly string[], migrationId: string): Promise<void> {
    const pk = copyClaimsOf(cacheNodeId);
    const results = await settleAll(digests, CLAIM_CONCURRENCY, async (sha256) => {
      try {
        await this.doc.send(
          new DeleteCommand({
            TableName: this.table,
            Key: { cacheNodeId: pk, sha256 },
            ConditionExpression: 'migrationId = :me',
            ExpressionAttributeValues: { ':me': migrationId },
          }),
        );
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
      }
    });
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * One conditional put per chunk under the claims partition `pk`; every put settles. `failure` is the first
   * error other than a failed condition (the claims in `mine` were taken all the same).
   */
  private async claim(
    pk: string,
    ttlSeconds: number,
    claims: readonly { readonly sha256: string; readonly takeOver: readonly string[] }[],
    migrationId: string,
  ): Promise<{ mine: Set<string>; others: Map<string, string>; failure?: { error: unknown } }> {
    const now = Math.floor(this.now().getTime() / 1000);
    const mine = new Set<string>();
    const others = new Map<string, string>();
    const results = await settleAll(claims, CLAIM_CONCURRENCY, async ({ sha256, takeOver }) => {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { cacheNodeId: pk, sha256, migrationId, expiresAt: now + ttlSeconds },
            ConditionExpression:
              'attribute_not_exists(sha256) OR migrationId = :me OR expiresAt < :now' +
              (takeOver.length > 0
                ? ` OR migrationId IN (${takeOver.map((_, i) => `:t${i}`).join(', ')})`
                : ''),
            ExpressionAttributeValues: {
              ':me': migrationId,
              ':now': now,
              ...Object.fromEntries(takeOver.map((m, i) => [`:t${i}`, m])),
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
        mine.add(sha256);
      } catch (err) {
        if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
        // lib-dynamodb leaves the old item marshalled on this error.
        const old = (err as { Item?: { migrationId?: { S?: string } | string } }).Item?.migrationId;
        others.set(sha256, (typeof old === 'string' ? old : old?.S) ?? 'unknown');
      }
    });
    const failed = results.find((r) => r.status === 'rejected');
    return { mine, others, ...(failed ? { failure: { error: failed.reason } } : {}) };
  }

  /**
   * Items of these keys (consistent reads, 100 keys a call, 8 calls at once), retrying what DynamoDB leaves
   * unprocessed with backoff. Keys with no item are simply absent.
   */
  private async batchGet<T>(
    keys: readonly { cacheNodeId: string; sha256: string }[],
    projection: { ProjectionExpression?: string; ExpressionAttributeNames?: Record<string, string> },
  ): Promise<T[]> {
    const batches: { cacheNodeId: string; sha256: string }[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) batches.push(keys.slice(i, i + BATCH_GET_LIMIT));
    const items: T[] = [];
    await mapLimit(batches, 8, async (batch) => {
      let pending = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed keys from the content index');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: { [this.table]: { Keys: pending, ...projection, ConsistentRead: true } },
          }),
        );
        items.push(...((out.Responses?.[this.table] ?? []) as T[]));
        pending = (out.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof pending;
      }
    });
    return items;
  }

  /** The unexpired claims under `pk` of these chunks, and who holds them (consistent reads, 100 keys a call). */
  private async liveClaims(pk: string, digests: readonly string[]): Promise<Map<string, string>> {
    const now = Math.floor(this.now().getTime() / 1000);
    const out = new Map<string, string>();
    const items = await this.batchGet<{ sha256: string; migrationId: string; expiresAt: number }>(
      digests.map((sha256) => ({ cacheNodeId: pk, sha256 })),
      {},
    );
    for (const item of items) if (item.expiresAt >= now) out.set(item.sha256, item.migrationId);
    return out;
  }
}
