// DynamoDB adapter for migrations (table Migrations, pk/sk): the migration item (MIG#id / META), its history
// (MIG#id / H#time), agent work items (WORK#dc / migration#action) and idempotency keys (IDEM#... / IDEM).
import { randomBytes } from 'node:crypto';
import {
  BatchGetCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { WorkItem } from '../../protocol/api/agent.ts';
import { TERMINAL_STATUSES } from '../../protocol/api/migrations.ts';
import { conflict, notFound } from '../domain/errors.ts';
import type { HistoryEntry, MigrationRecord, MigrationStatus } from '../domain/migration.ts';
import { decodeCursor, encodeCursor, type Page } from './pagination.ts';
import { INDEX } from './tables.ts';
import { ExpressionBuilder, type Path, type UpdateSpec } from './update-expression.ts';

const metaKey = (id: string) => ({ pk: `MIG#${id}`, sk: 'META' });
const LIST_PK = 'MIGRATION';
/** History entries kept per migration; older ones expire with the migration's history TTL. */
const HISTORY_TTL_DAYS = 90;

export class MigrationTerminatedError extends Error {
  override readonly name = 'MigrationTerminated';
}

export interface BatchRecord {
  readonly id: string;
  readonly sourceDataCenterId: string;
  readonly destinations: readonly string[];
  readonly migrationIds: readonly string[];
  readonly vmIds: readonly string[];
  readonly createdAt: string;
}

export interface StoredWork extends WorkItem {
  readonly taskToken: string;
}

export interface UpdateOptions {
  /** Refuse (MigrationTerminated) when the migration is already COMPLETED, FAILED or CANCELLED. Default true. */
  readonly requireActive?: boolean;
  /** Only when the status is one of these. */
  readonly expectStatus?: readonly MigrationStatus[];
  readonly history?: { readonly event: string; readonly message: string };
  /**
   * Only when each attribute holds the value (`undefined`: the attribute is absent). Two concurrent callbacks for
   * one step then change the migration once: the second finds the condition false (a conflict) and can answer
   * from what the first wrote.
   */
  readonly expect?: ReadonlyArray<readonly [Path, unknown]>;
  /** Only when none of these attributes holds its value (an absent attribute holds none). */
  readonly expectNot?: ReadonlyArray<readonly [Path, unknown]>;
}

type Item = Record<string, unknown>;

/** History items read newest first, as entries oldest first. */
function historyEntries(items: readonly Item[]): HistoryEntry[] {
  return (items as (HistoryEntry & Item)[])
    .toReversed()
    .map(({ at, event, message, status }) => ({ at, event, message, ...(status ? { status } : {}) }));
}

function toRecord(item: Item): MigrationRecord {
  const {
    pk: _pk,
    sk: _sk,
    gsi1pk: _g1,
    gsi1sk: _g2,
    reservedCacheNodes,
    ...rest
  } = item as Item & {
    reservedCacheNodes?: Set<string>;
  };
  return {
    ...(rest as unknown as MigrationRecord),
    reservedCacheNodes: reservedCacheNodes ? [...reservedCacheNodes].sort() : [],
  };
}

export class MigrationStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  // ---- migration item

  /** Creates the migration unless it exists; returns whether this call created it. */
  async create(record: MigrationRecord): Promise<boolean> {
    const { reservedCacheNodes: _, ...item } = record;
    const at = record.createdAt;
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.table,
                Item: { ...metaKey(record.id), gsi1pk: LIST_PK, gsi1sk: `${at}#${record.id}`, ...item },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            {
              Put: {
                TableName: this.table,
                Item: this.historyItem(record.id, 'created', 'migration requested', record.status),
              },
            },
          ],
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === 'TransactionCanceledException') return false;
      throw err;
    }
  }

  async get(id: string): Promise<MigrationRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: metaKey(id), ConsistentRead: true }),
    );
    return out.Item && toRecord(out.Item);
  }

  async require(id: string): Promise<MigrationRecord> {
    const m = await this.get(id);
    if (!m) throw notFound('migration', id);
    return m;
  }

  /**
   * One conditional update of the migration, with an optional history entry written in the same transaction.
   * Terminal statuses are sticky: a late task can never move a cancelled migration forward.
   */
  async update(
    id: string,
    spec: UpdateSpec & { status?: MigrationStatus },
    options: UpdateOptions = {},
  ): Promise<void> {
    const b = new ExpressionBuilder();
    const set = [...(spec.set ?? []), [['updatedAt'], this.now().toISOString()] as const];
    if (spec.status) set.push([['status'], spec.status]);
    const expression = b.update({ ...spec, set });
    const conditions = ['attribute_exists(pk)'];
    if (options.requireActive ?? true) {
      conditions.push(
        `NOT ${b.path(['status'])} IN (${TERMINAL_STATUSES.map((s) => b.value(s)).join(', ')})`,
      );
    }
    if (options.expectStatus) {
      conditions.push(`${b.path(['status'])} IN (${options.expectStatus.map((s) => b.value(s)).join(', ')})`);
    }
    for (const [path, value] of options.expect ?? []) {
      conditions.push(
        value === undefined ? `attribute_not_exists(${b.path(path)})` : `${b.path(path)} = ${b.value(value)}`,
      );
    }
    for (const [path, value] of options.expectNot ?? []) {
      conditions.push(`(attribute_not_exists(${b.path(path)}) OR ${b.path(path)} <> ${b.value(value)})`);
    }
    const update = {
      TableName: this.table,
      Key: metaKey(id),
      UpdateExpression: expression,
      ConditionExpression: conditions.join(' AND '),
      ...b.params(),
    };
    try {
      if (options.history) {
        const h = this.historyItem(id, options.history.event, options.history.message, spec.status);
        await this.doc.send(
          new TransactWriteCommand({
            TransactItems: [{ Update: update }, { Put: { TableName: this.table, Item: h } }],
          }),
        );
      } else {
        await this.doc.send(new UpdateCommand(update));
      }
    } catch (err) {
      const name = (err as Error).name;
      if (name !== 'ConditionalCheckFailedException' && name !== 'TransactionCanceledException') throw err;
      const current = await this.get(id);
      if (!current) throw notFound('migration', id);
      if (TERMINAL_STATUSES.includes(current.status) && (options.requireActive ?? true)) {
        throw new MigrationTerminatedError(`migration ${id} is already ${current.status}`);
      }
      if (options.expect || options.expectNot) {
        throw conflict(
          `migration ${id} was changed by another request meanwhile (status ${current.status})`,
          {
            status: current.status,
          },
        );
      }
      throw conflict(
        `migration ${id} is ${current.status}; expected ${options.expectStatus?.join(' or ') ?? 'an active status'}`,
        {
          status: current.status,
        },
      );
    }
  }

  async addHistory(id: string, event: string, message: string, status?: MigrationStatus): Promise<void> {
    await this.doc.send(
      new PutCommand({ TableName: this.table, Item: this.historyItem(id, event, message, status) }),
    );
  }

  /**
   * The migration and its latest history in one Query: `META` sorts after every `H#…` item, so reading the
   * partition backwards gives the record first, then the newest entries.
   */
  async getWithHistory(
    id: string,
    limit = 200,
  ): Promise<{ migration: MigrationRecord; history: HistoryEntry[] } | undefined> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `MIG#${id}` },
        ScanIndexForward: false,
        Limit: limit + 1,
        ConsistentRead: true,
      }),
    );
    const [meta, ...entries] = out.Items ?? [];
    if (meta?.['sk'] !== 'META') return undefined;
    const history = historyEntries(entries.filter((e) => String(e['sk']).startsWith('H#')));
    return { migration: toRecord(meta), history };
  }

  async history(id: string, limit = 200): Promise<HistoryEntry[]> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :h)',
        ExpressionAttributeValues: { ':pk': `MIG#${id}`, ':h': 'H#' },
        ScanIndexForward: false,
        Limit: limit,
        ConsistentRead: true,
      }),
    );
    return historyEntries(out.Items ?? []);
  }

  async list(
    filter: (m: MigrationRecord) => boolean,
    limit: number,
    cursor?: string,
  ): Promise<Page<MigrationRecord>> {
    const items: MigrationRecord[] = [];
    let startKey = decodeCursor(cursor, {
      attributes: ['pk', 'sk', 'gsi1pk', 'gsi1sk'],
      fixed: { sk: 'META', gsi1pk: LIST_PK },
    });
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          IndexName: INDEX.migrationsByCreated,
          KeyConditionExpression: 'gsi1pk = :p',
          ExpressionAttributeValues: { ':p': LIST_PK },
          ScanIndexForward: false,
          Limit: limit - items.length,
          ExclusiveStartKey: startKey,
        }),
      );
      items.push(...(out.Items ?? []).map(toRecord).filter(filter));
      startKey = out.LastEvaluatedKey;
    } while (startKey && items.length < limit);
    const next = encodeCursor(startKey);
    return { items, ...(next ? { nextCursor: next } : {}) };
  }

  /** Several migrations by id (BatchGet, 100 per call); missing ids are left out. */
  async getMany(ids: readonly string[]): Promise<MigrationRecord[]> {
    const out: MigrationRecord[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      let keys = ids.slice(i, i + 100).map(metaKey);
      for (let attempt = 0; keys.length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept returning unprocessed keys for migrations');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 25 * 2 ** attempt));
        const res = await this.doc.send(
          new BatchGetCommand({ RequestItems: { [this.table]: { Keys: keys, ConsistentRead: true } } }),
        );
        out.push(...(res.Responses?.[this.table] ?? []).map(toRecord));
        keys = (res.UnprocessedKeys?.[this.table]?.Keys ?? []) as typeof keys;
      }
    }
    const order = new Map(ids.map((id, n) => [id, n]));
    return out.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
  }

  // ---- batches

  async putBatch(batch: BatchRecord): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: `BATCH#${batch.id}`, sk: 'META', ...batch },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  async getBatch(id: string): Promise<BatchRecord | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { pk: `BATCH#${id}`, sk: 'META' }, ConsistentRead: true }),
    );
    return out.Item && stripKeys<BatchRecord>(out.Item);
  }

  // ---- agent work items

  async putWork(work: StoredWork): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { pk: `WORK#${work.dataCenterId}`, sk: `${work.migrationId}#${work.action}`, ...work },
      }),
    );
  }

  async getWork(
    dataCenterId: string,
    migrationId: string,
    action: WorkItem['action'],
  ): Promise<StoredWork | undefined> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.table,
        Key: { pk: `WORK#${dataCenterId}`, sk: `${migrationId}#${action}` },
        ConsistentRead: true,
      }),
    );
    return out.Item && stripKeys<StoredWork>(out.Item);
  }

  async listWork(dataCenterId: string): Promise<StoredWork[]> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': `WORK#${dataCenterId}` },
        ConsistentRead: true,
      }),
    );
    return (out.Items ?? []).map((i) => stripKeys<StoredWork>(i));
  }

  /**
   * Marks a work item as seen by its agent now, unless it was within `everyMs`: true when this call marked it (the
   * caller then sends the heartbeat), so a busy agent's frequent looks cost one heartbeat per interval.
   */
  async touchWork(
    work: Pick<StoredWork, 'dataCenterId' | 'migrationId' | 'action'>,
    everyMs: number,
  ): Promise<boolean> {
    const now = Date.now();
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: `WORK#${work.dataCenterId}`, sk: `${work.migrationId}#${work.action}` },
          UpdateExpression: 'SET seenAt = :now',
          ConditionExpression: 'attribute_exists(pk) AND (attribute_not_exists(seenAt) OR seenAt < :before)',
          ExpressionAttributeValues: { ':now': now, ':before': now - everyMs },
        }),
      );
      return true;
    } catch (err) {
      if ((err as Error).name === 'ConditionalCheckFailedException') return false;
      throw err;
    }
  }

  /** Deletes a work item only if it still holds this token (a newer attempt's item is left alone). */
  async deleteWork(
    work: Pick<StoredWork, 'dataCenterId' | 'migrationId' | 'action' | 'taskToken'>,
  ): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: `WORK#${work.dataCenterId}`, sk: `${work.migrationId}#${work.action}` },
          ConditionExpression: 'attribute_not_exists(pk) OR taskToken = :t',
          ExpressionAttributeValues: { ':t': work.taskToken },
        }),
      );
    } catch (err) {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
    }
  }

  async deleteAllWork(m: Pick<MigrationRecord, 'id' | 'sourceDataCenterId' | 'destinations'>): Promise<void> {
    const targets: [string, WorkItem['action']][] = [
      [m.sourceDataCenterId, 'manifest'],
      [m.sourceDataCenterId, 'upload'],
      [m.sourceDataCenterId, 'release'],
      ...m.destinations.flatMap((d) => [
        [d, 'download'] as [string, WorkItem['action']],
        [d, 'handover'] as [string, WorkItem['action']],
      ]),
    ];
    await Promise.all(
      targets.map(([dc, action]) =>
        this.doc.send(
          new DeleteCommand({ TableName: this.table, Key: { pk: `WORK#${dc}`, sk: `${m.id}#${action}` } }),
        ),
      ),
    );
  }

  // ---- idempotency keys

  /** Claims an idempotency key for a migration id; returns the id and request hash of whoever holds it. */
  async claimIdempotencyKey(
    scope: string,
    key: string,
    migrationId: string,
    requestHash: string,
  ): Promise<{ migrationId: string; requestHash: string }> {
    const Key = { pk: `IDEM#${scope}#${key}`, sk: 'IDEM' };
    const expiresAt = Math.floor(this.now().getTime() / 1000) + 24 * 3600;
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.table,
          Item: { ...Key, migrationId, requestHash, expiresAt },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return { migrationId, requestHash };
    } catch (err) {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
      const out = await this.doc.send(new GetCommand({ TableName: this.table, Key, ConsistentRead: true }));
      const held = out.Item as { migrationId: string; requestHash: string } | undefined;
      if (!held) throw conflict(`idempotency key "${key}" is being released; retry`);
      return { migrationId: held.migrationId, requestHash: held.requestHash };
    }
  }

  private historyItem(id: string, event: string, message: string, status?: MigrationStatus): Item {
    const at = this.now().toISOString();
    return {
      pk: `MIG#${id}`,
      sk: `H#${at}#${randomBytes(3).toString('hex')}`,
      at,
      event,
      message,
      ...(status ? { status } : {}),
      expiresAt: Math.floor(this.now().getTime() / 1000) + HISTORY_TTL_DAYS * 86400,
    };
  }
}

function stripKeys<T>(item: Item): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}
