// Migrations that start later (`startAt`): an entry each in the Migrations table, found by the scheduler every
// minute (lambdas/workflow/due-work.ts), instead of an execution waiting for weeks (a Standard execution lives at
// most a year, and a waiting one is state and cost for nothing). Entries spread over SHARDS partition keys
// (`SCHEDULED#<n>`, by the migration id), sorted by start time, so no one key takes every write.
import { createHash } from 'node:crypto';
import { DeleteCommand, type DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';

export const SHARDS = 8;

export interface ScheduledStart {
  readonly migrationId: string;
  readonly startAt: string;
}

const shardOf = (id: string) => createHash('sha256').update(id).digest()[0] ?? 0;
const key = (s: ScheduledStart) => ({
  pk: `SCHEDULED#${shardOf(s.migrationId) % SHARDS}`,
  sk: `${s.startAt}#${s.migrationId}`,
});

export class ScheduledStarts {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async add(start: ScheduledStart): Promise<void> {
    await this.doc.send(new PutCommand({ TableName: this.table, Item: { ...key(start), ...start } }));
  }

  /** Entries due at or before `until` (ISO time), oldest first per shard, at most `limit` per shard. */
  async due(until: string, limit = 100): Promise<ScheduledStart[]> {
    const pages = await Promise.all(
      Array.from({ length: SHARDS }, (_, shard) =>
        this.doc.send(
          new QueryCommand({
            TableName: this.table,
            KeyConditionExpression: 'pk = :pk AND sk <= :until',
            ExpressionAttributeValues: { ':pk': `SCHEDULED#${shard}`, ':until': `${until}#~` },
            Limit: limit,
          }),
        ),
      ),
    );
    return pages
      .flatMap((p) => p.Items ?? [])
      .map((i) => ({ migrationId: String(i['migrationId']), startAt: String(i['startAt']) }))
      .sort((a, b) => a.startAt.localeCompare(b.startAt));
  }

  async remove(start: ScheduledStart): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.table, Key: key(start) }));
  }
}
