// The CMN content index (table ContentIndex: pk cacheNodeId, sk sha256): which cache node holds which verified
// chunk. Lookups are batched at DynamoDB's limit of 100 keys per call. The same table holds the claims that let
// concurrent migrations share work: upload claims (`#upload-claims`) and copy claims per destination cache node
// (`#copy-claims#<node>`), each with its owner migration and an expiry (`expiresAt`, also the table's TTL).
import {
  BatchGetCommand,
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  PutCommand,
} from '@aws-sdk/lib-dynamodb';
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
const BATCH_WRITE_LIMIT = 25;

export interface IndexedChunk {
  readonly sha256: string;
  readonly length: number;
}

export class ContentIndex {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** For each digest, the subset of `cacheNodeIds` that holds it. Digests held nowhere are absent. */
  async holders(
    digests: readonly string[],
    cacheNodeIds: readonly string[],
  ): Promise<Map<string, Set<string>>> {
    const keys = cacheNodeIds.flatMap((cacheNodeId) => digests.map((sha256) => ({ cacheNodeId, sha256 })));
    const batches: (typeof keys)[] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) batches.push(keys.slice(i, i + BATCH_GET_LIMIT));
    const result = new Map<string, Set<string>>();
    await mapLimit(batches, 8, async (batch) => {
      let pending: { cacheNodeId: string; sha256: string }[] = batch;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed keys from the content index');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: {
              [this.table]: {
                Keys: pending,
                ProjectionExpression: 'cacheNodeId, sha256',
                ConsistentRead: true,
              },
            },
          }),
        );
        for (const item of (out.Responses?.[this.table] ?? []) as { cacheNodeId: string; sha256: string }[]) {
          const set = result.get(item.sha256) ?? new Set<string>();
          set.add(item.cacheNodeId);
          result.set(item.sha256, set);
        }
        pending = (out.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof pending;
      }
    });
    return result;
  }

  /** Records chunks as present and verified at a cache node (idempotent). */
  async record(cacheNodeId: string, chunks: readonly IndexedChunk[]): Promise<void> {
    const storedAt = this.now().toISOString();
    const batches: IndexedChunk[][] = [];
    for (let i = 0; i < chunks.length; i += BATCH_WRITE_LIMIT)
      batches.push(chunks.slice(i, i + BATCH_WRITE_LIMIT));
    await mapLimit(batches, 4, async (batch) => {
      let pending: unknown[] = batch.map((c) => ({
        PutRequest: { Item: { cacheNodeId, sha256: c.sha256, length: c.length, storedAt } },
      }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed writes to the content index');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const out = await this.doc.send(
          new BatchWriteCommand({ RequestItems: { [this.table]: pending as never } }),
        );
        pending = out.UnprocessedItems?.[this.table] ?? [];
      }
    });
  }

  /** Forgets a chunk at a cache node (its copy there turned out corrupt and was deleted); idempotent. */
  async remove(cacheNodeId: string, sha256: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.table, Key: { cacheNodeId, sha256 } }));
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

  /** The unexpired claims under `pk` of these chunks, and who holds them (consistent reads, 100 keys a call). */
  private async liveClaims(pk: string, digests: readonly string[]): Promise<Map<string, string>> {
    const now = Math.floor(this.now().getTime() / 1000);
    const out = new Map<string, string>();
    const batches: string[][] = [];
    for (let i = 0; i < digests.length; i += BATCH_GET_LIMIT)
      batches.push(digests.slice(i, i + BATCH_GET_LIMIT));
    await mapLimit(batches, 8, async (batch) => {
      let pending = batch.map((sha256) => ({ cacheNodeId: pk, sha256 }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt > 8) throw new Error(`DynamoDB kept returning unprocessed keys for ${pk} claims`);
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const res = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true } } }),
        );
        for (const item of (res.Responses?.[this.table] ?? []) as {
          sha256: string;
          migrationId: string;
          expiresAt: number;
        }[]) {
          if (item.expiresAt >= now) out.set(item.sha256, item.migrationId);
        }
        pending = (res.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof pending;
      }
    });
    return out;
  }
}
