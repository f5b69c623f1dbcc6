// Backup policies in the Migrations table (pk POLICY, sk policy id). Each run advances `nextRunAt` with a
// conditional write, so two schedulers never start the same run twice.
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { type BackupPolicy, MAX_KEPT_RUNS } from '../../protocol/api/policies.ts';
import { notFound } from '../domain/errors.ts';
import { decodeCursor, encodeCursor, type Page } from './pagination.ts';

const PK = 'POLICY';

export class PolicyStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async put(policy: BackupPolicy): Promise<void> {
    await this.doc.send(
      new PutCommand({ TableName: this.table, Item: { pk: PK, sk: policy.id, ...policy } }),
    );
  }

  async get(id: string): Promise<BackupPolicy | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: PK, sk: id }, ConsistentRead: true }),
    );
    return out.Item && strip(out.Item);
  }

  async require(id: string): Promise<BackupPolicy> {
    const p = await this.get(id);
    if (!p) throw notFound('backup policy', id);
    return p;
  }

  async delete(id: string): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: PK, sk: id },
          ConditionExpression: 'attribute_exists(pk)',
        }),
      );
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') throw notFound('backup policy', id);
      throw err;
    }
  }

  async list(limit: number, cursor?: string): Promise<Page<BackupPolicy>> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :p',
        ExpressionAttributeValues: { ':p': PK },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor, { attributes: ['pk', 'sk'], fixed: { pk: PK } }),
        ConsistentRead: true,
      }),
    );
    const next = encodeCursor(out.LastEvaluatedKey);
    return { items: (out.Items ?? []).map(strip), ...(next ? { nextCursor: next } : {}) };
  }

  /**
   * Moves a run forward only if nobody else did: false when another scheduler took this run. A run that started
   * a backup joins `recentRuns` (newest first, MAX_KEPT_RUNS at most).
   */
  async advance(
    policy: Pick<BackupPolicy, 'id' | 'recentRuns'>,
    expectedNextRunAt: string,
    nextRunAt: string,
    lastRun: BackupPolicy['lastRun'],
  ): Promise<boolean> {
    const started = lastRun?.migrationId !== undefined && lastRun.skipped === undefined;
    const recentRuns =
      started && lastRun?.migrationId
        ? [
            { at: lastRun.at, migrationId: lastRun.migrationId },
            ...(policy.recentRuns ?? []).filter((r) => r.migrationId !== lastRun.migrationId),
          ].slice(0, MAX_KEPT_RUNS)
        : undefined;
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: PK, sk: policy.id },
          UpdateExpression: `SET nextRunAt = :n, lastRun = :l${recentRuns ? ', recentRuns = :r' : ''}`,
          ConditionExpression: 'nextRunAt = :e',
          ExpressionAttributeValues: {
            ':n': nextRunAt,
            ':l': lastRun,
            ':e': expectedNextRunAt,
            ...(recentRuns ? { ':r': recentRuns } : {}),
          },
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }
}

function strip(item: Record<string, unknown>): BackupPolicy {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as BackupPolicy;
}
