// The CMN content index (table ContentIndex: pk cacheNodeId, sk sha256): which cache node holds which verified
// chunk. Lookups are batched at DynamoDB's limit of 100 keys per call.
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mapLimit } from '../domain/concurrency.ts';

export const BATCH_GET_LIMIT = 100;
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
}
