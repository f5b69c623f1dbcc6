// DynamoDB adapter for the node registry (table Registry: pk kind, sk id). Every change is one conditional
// write or one transaction, so nothing is ever half-written.
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { Location } from '../../protocol/topology.ts';
import { type CacheSettings, DEFAULT_CACHE_SETTINGS } from '../domain/cache-space.ts';
import { conflict, invalid, notFound } from '../domain/errors.ts';
import type {
  AgentInfo,
  CacheNodeRecord,
  CacheNodeStatus,
  DataCenterRecord,
  PinRecord,
} from '../domain/registry.ts';
import { decodeCursor, encodeCursor, type Page } from './pagination.ts';

const CACHE_NODE = 'cacheNode';
const DATA_CENTER = 'dataCenter';
const PIN = 'pin';
const SETTINGS = 'settings';
const CACHE_SETTINGS_ID = 'cache';

export interface CacheNodeInput {
  readonly name: string;
  readonly region: string;
  readonly location: Location;
  readonly capacity: number;
  readonly status: CacheNodeStatus;
  readonly bucket: string;
  /** Absent: no budget (a replaced node loses its budget unless it is given again). */
  readonly budgetBytes?: number | undefined;
}

export interface DataCenterInput {
  readonly name: string;
  readonly address: string;
  readonly location: Location;
  readonly homeCacheNode?: string | undefined;
}

type Item = Record<string, unknown>;

/** Stored shapes: string sets vanish from an item when their last member is deleted. */
/** The most room any queued migration wants at the node (absent when none does). */
function wanted(map: Record<string, number> | undefined): { spaceWanted?: number } {
  const values = Object.values(map ?? {}).map(Number);
  return values.length > 0 ? { spaceWanted: Math.max(...values) } : {};
}

type CacheNodeItem = Omit<CacheNodeRecord, 'reservations' | 'homedDataCenters' | 'spaceReservations'> & {
  reservations?: Set<string>;
  homedDataCenters?: Set<string>;
  spaceReservations?: Record<string, number>;
};
type DataCenterItem = Omit<DataCenterRecord, 'activeMigrations'> & { activeMigrations?: Set<string> };

const setToArray = (v: Set<string> | undefined): string[] => (v ? [...v].sort() : []);

function toCacheNode(raw: Item): CacheNodeRecord {
  const item = raw as CacheNodeItem;
  return {
    id: item.id,
    name: item.name,
    region: item.region,
    location: item.location,
    capacity: item.capacity,
    status: item.status,
    bucket: item.bucket,
    reservations: setToArray(item.reservations),
    ...(item.budgetBytes !== undefined ? { budgetBytes: Number(item.budgetBytes) } : {}),
    spaceReservations: Object.fromEntries(
      Object.entries(item.spaceReservations ?? {}).map(([k, v]) => [k, Number(v)]),
    ),
    ...wanted(item.spaceWanted as unknown as Record<string, number> | undefined),
    homedDataCenters: setToArray(item.homedDataCenters),
    createdAt: item.createdAt,
    updatedAt: item.updatedAt,
  };
}

function toPin(raw: Item): PinRecord {
  const item = raw as unknown as PinRecord;
  return {
    imageId: item.imageId,
    migrationId: item.migrationId,
    cacheNodeIds: [...item.cacheNodeIds],
    pinnedAt: item.pinnedAt,
  };
}

function toDataCenter(raw: Item): DataCenterRecord {
  const item = raw as DataCenterItem;
  return {
    id: item.id,
    name: item.name,
    address: item.address,
    location: item.location,
    ...(item.homeCacheNode !== undefined ? { homeCacheNode: item.homeCacheNode } : {}),
    activeMigrations: setToArray(item.activeMigrations),
    ...(item.agent ? { agent: item.agent } : {}),
    createdAt: item.createdAt,
    updatedAt: item.updatedAt,
  };
}

const isConditionFailure = (err: unknown) =>
  (err as Error).name === 'ConditionalCheckFailedException' || err instanceof TransactionCanceledException;

export class RegistryStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
    private readonly now: () => Date = () => new Date(),
  ) {}

  // ---- reads

  async listCacheNodes(limit: number, cursor?: string): Promise<Page<CacheNodeRecord>> {
    const page = await this.query(CACHE_NODE, limit, cursor);
    return { ...page, items: page.items.map(toCacheNode) };
  }

  async listDataCenters(limit: number, cursor?: string): Promise<Page<DataCenterRecord>> {
    const page = await this.query(DATA_CENTER, limit, cursor);
    return { ...page, items: page.items.map(toDataCenter) };
  }

  async allCacheNodes(): Promise<CacheNodeRecord[]> {
    const out: CacheNodeRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listCacheNodes(1000, cursor);
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  async allDataCenters(): Promise<DataCenterRecord[]> {
    const out: DataCenterRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listDataCenters(1000, cursor);
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  async getCacheNode(id: string): Promise<CacheNodeRecord | undefined> {
    const item = await this.get(CACHE_NODE, id);
    return item && toCacheNode(item);
  }

  async getDataCenter(id: string): Promise<DataCenterRecord | undefined> {
    const item = await this.get(DATA_CENTER, id);
    return item && toDataCenter(item);
  }

  async requireCacheNode(id: string): Promise<CacheNodeRecord> {
    const node = await this.getCacheNode(id);
    if (!node) throw notFound('cache node', id);
    return node;
  }

  async requireDataCenter(id: string): Promise<DataCenterRecord> {
    const dc = await this.getDataCenter(id);
    if (!dc) throw notFound('data center', id);
    return dc;
  }

  // ---- cache nodes

  /** Creates or replaces a cache node; its reservations and back-references are kept. Region is fixed. */
  async putCacheNode(
    id: string,
    input: CacheNodeInput,
  ): Promise<{ created: boolean; node: CacheNodeRecord }> {
    const existing = await this.getCacheNode(id);
    const now = this.now().toISOString();
    if (!existing) {
      try {
        await this.doc.send(
          new PutCommand({
            TableName: this.table,
            Item: { kind: CACHE_NODE, id, ...stripUndefined(input), createdAt: now, updatedAt: now },
            ConditionExpression: 'attribute_not_exists(id)',
          }),
        );
      } catch (err) {
        if (isConditionFailure(err)) throw conflict(`cache node "${id}" was created concurrently; retry`);
        throw err;
      }
      return { created: true, node: await this.requireCacheNode(id) };
    }
    if (existing.region !== input.region) {
      throw conflict(
        `cache node "${id}" lives in ${existing.region}; its region cannot change (its bucket is there). ` +
          'Register a new cache node id for the other region.',
        { field: 'region' },
      );
    }
    const node = await this.updateCacheNode(
      id,
      {
        name: input.name,
        location: input.location,
        capacity: input.capacity,
        status: input.status,
        ...(input.budgetBytes !== undefined ? { budgetBytes: input.budgetBytes } : {}),
        updatedAt: now,
      },
      input.budgetBytes === undefined ? ['budgetBytes'] : [],
    );
    return { created: false, node };
  }

  /** `budgetBytes: null` removes the budget. */
  async patchCacheNode(
    id: string,
    patch: { capacity?: number; status?: CacheNodeStatus; budgetBytes?: number | null },
  ): Promise<CacheNodeRecord> {
    const { budgetBytes, ...rest } = patch;
    return this.updateCacheNode(
      id,
      {
        ...stripUndefined(rest),
        ...(typeof budgetBytes === 'number' ? { budgetBytes } : {}),
        updatedAt: this.now().toISOString(),
      },
      budgetBytes === null ? ['budgetBytes'] : [],
    );
  }

  private async updateCacheNode(
    id: string,
    fields: Record<string, unknown>,
    remove: readonly string[] = [],
  ): Promise<CacheNodeRecord> {
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets = Object.entries(fields).map(([k, v], i) => {
      names[`#f${i}`] = k;
      values[`:v${i}`] = v;
      return `#f${i} = :v${i}`;
    });
    const removes = remove.map((k, i) => {
      names[`#r${i}`] = k;
      return `#r${i}`;
    });
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind: CACHE_NODE, id },
          UpdateExpression: `SET ${sets.join(', ')}${removes.length > 0 ? ` REMOVE ${removes.join(', ')}` : ''}`,
          ConditionExpression: 'attribute_exists(id)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_NEW',
        }),
      );
      return toCacheNode(out.Attributes ?? {});
    } catch (err) {
      if (isConditionFailure(err)) throw notFound('cache node', id);
      throw err;
    }
  }

  async deleteCacheNode(id: string): Promise<void> {
    const node = await this.requireCacheNode(id);
    const blockers = describeCacheNodeBlockers(node);
    if (blockers) throw conflict(blockers.message, blockers.details);
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { kind: CACHE_NODE, id },
          // Sets vanish with their last member, so "not exists" means "empty".
          ConditionExpression:
            'attribute_exists(id) AND attribute_not_exists(homedDataCenters) AND attribute_not_exists(reservations)',
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const now = await this.getCacheNode(id);
      const again = now && describeCacheNodeBlockers(now);
      throw conflict(
        again?.message ?? `cache node "${id}" changed concurrently; retry`,
        again?.details ?? {},
      );
    }
  }

  // ---- cache settings (the collector's grace period, retention, water marks)

  async cacheSettings(): Promise<CacheSettings> {
    const item = await this.get(SETTINGS, CACHE_SETTINGS_ID);
    const { kind: _k, id: _i, updatedAt: _u, ...stored } = (item ?? {}) as Record<string, unknown>;
    return { ...DEFAULT_CACHE_SETTINGS, ...(stored as Partial<CacheSettings>) };
  }

  /** Changes some settings; `retentionDays: null` removes the retention period. */
  async putCacheSettings(
    patch: Partial<Omit<CacheSettings, 'retentionDays'>> & { retentionDays?: number | null },
  ): Promise<CacheSettings> {
    const current = await this.cacheSettings();
    const { retentionDays, ...rest } = patch;
    const next: CacheSettings = {
      ...current,
      ...stripUndefined(rest),
      ...(typeof retentionDays === 'number' ? { retentionDays } : {}),
    };
    if (retentionDays === null) delete (next as { retentionDays?: number }).retentionDays;
    if (next.lowWater > next.highWater) {
      throw invalid('lowWater', `must not be above highWater (${next.highWater})`);
    }
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: { kind: SETTINGS, id: CACHE_SETTINGS_ID, ...next, updatedAt: this.now().toISOString() },
      }),
    );
    return next;
  }

  // ---- pins (images whose chunks the collector keeps at named cache nodes)

  async allPins(): Promise<PinRecord[]> {
    const out: PinRecord[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.query(PIN, 1000, cursor);
      out.push(...page.items.map(toPin));
      cursor = page.nextCursor;
    } while (cursor);
    return out;
  }

  async listPins(limit: number, cursor?: string): Promise<Page<PinRecord>> {
    const page = await this.query(PIN, limit, cursor);
    return { ...page, items: page.items.map(toPin) };
  }

  async getPin(imageId: string): Promise<PinRecord | undefined> {
    const item = await this.get(PIN, imageId);
    return item && toPin(item);
  }

  async putPin(pin: Omit<PinRecord, 'pinnedAt'>): Promise<PinRecord> {
    const record: PinRecord = { ...pin, pinnedAt: this.now().toISOString() };
    await this.doc.send(
      new PutCommand({ TableName: this.table, Item: { kind: PIN, id: pin.imageId, ...record } }),
    );
    return record;
  }

  /** Returns whether there was a pin. */
  async deletePin(imageId: string): Promise<boolean> {
    const out = await this.doc.send(
      new DeleteCommand({ TableName: this.table, Key: { kind: PIN, id: imageId }, ReturnValues: 'ALL_OLD' }),
    );
    return out.Attributes !== undefined;
  }

  // ---- data centers

  async putDataCenter(
    id: string,
    input: DataCenterInput,
  ): Promise<{ created: boolean; dataCenter: DataCenterRecord }> {
    const existing = await this.getDataCenter(id);
    const now = this.now().toISOString();
    const oldHome = existing?.homeCacheNode;
    const newHome = input.homeCacheNode;
    const items: NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']> = [];
    if (!existing) {
      items.push({
        Put: {
          TableName: this.table,
          Item: { kind: DATA_CENTER, id, ...stripUndefined(input), createdAt: now, updatedAt: now },
          ConditionExpression: 'attribute_not_exists(id)',
        },
      });
    } else {
      const set = ['#n = :n', 'address = :a', '#l = :l', 'updatedAt = :u'];
      const values: Record<string, unknown> = {
        ':n': input.name,
        ':a': input.address,
        ':l': input.location,
        ':u': now,
      };
      let update = `SET ${[...set, ...(newHome ? ['homeCacheNode = :h'] : [])].join(', ')}`;
      if (newHome) values[':h'] = newHome;
      else update += ' REMOVE homeCacheNode';
      // Guard on the home we read, so the back-references below stay true under concurrent writers.
      let condition = 'attribute_exists(id) AND ';
      if (oldHome) {
        condition += 'homeCacheNode = :oldHome';
        values[':oldHome'] = oldHome;
      } else condition += 'attribute_not_exists(homeCacheNode)';
      items.push({
        Update: {
          TableName: this.table,
          Key: { kind: DATA_CENTER, id },
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeNames: { '#n': 'name', '#l': 'location' },
          ExpressionAttributeValues: values,
        },
      });
    }
    if (newHome !== oldHome) {
      if (newHome) items.push(this.backReference('ADD', newHome, id));
      if (oldHome) items.push(this.backReference('DELETE', oldHome, id, false));
    }
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      if (newHome && newHome !== oldHome && !(await this.getCacheNode(newHome))) {
        throw invalid('homeCacheNode', `unknown cache node "${newHome}"`);
      }
      throw conflict(`data center "${id}" changed concurrently; retry`);
    }
    return { created: !existing, dataCenter: await this.requireDataCenter(id) };
  }

  async deleteDataCenter(id: string): Promise<void> {
    const dc = await this.requireDataCenter(id);
    if (dc.activeMigrations.length > 0) throw activeMigrationsConflict(dc);
    const values: Record<string, unknown> = {};
    let condition = 'attribute_exists(id) AND attribute_not_exists(activeMigrations) AND ';
    if (dc.homeCacheNode) {
      condition += 'homeCacheNode = :h';
      values[':h'] = dc.homeCacheNode;
    } else condition += 'attribute_not_exists(homeCacheNode)';
    const items: NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']> = [
      {
        Delete: {
          TableName: this.table,
          Key: { kind: DATA_CENTER, id },
          ConditionExpression: condition,
          ...(dc.homeCacheNode ? { ExpressionAttributeValues: values } : {}),
        },
      },
    ];
    if (dc.homeCacheNode) items.push(this.backReference('DELETE', dc.homeCacheNode, id, false));
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
      const now = await this.getDataCenter(id);
      if (!now) throw notFound('data center', id);
      if (now.activeMigrations.length > 0) throw activeMigrationsConflict(now);
      throw conflict(`data center "${id}" changed concurrently; retry`);
    }
  }

  /** Topology entries seeded before (`cacheNode:<id>`, `dataCenter:<id>`): a removed one stays removed. */
  async seededIds(): Promise<Set<string>> {
    const item = await this.get('seed', 'topology');
    return new Set((item?.['entries'] as Set<string> | undefined) ?? []);
  }

  async markSeeded(entries: readonly string[]): Promise<void> {
    if (entries.length === 0) return;
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { kind: 'seed', id: 'topology' },
        UpdateExpression: 'ADD #e :e',
        ExpressionAttributeNames: { '#e': 'entries' },
        ExpressionAttributeValues: { ':e': new Set(entries) },
      }),
    );
  }

  /** Records what a data center's agent reports about itself; never creates a data center. */
  async recordAgent(dataCenterId: string, agent: AgentInfo): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind: DATA_CENTER, id: dataCenterId },
          UpdateExpression: 'SET #agent = :a',
          ConditionExpression: 'attribute_exists(id)',
          ExpressionAttributeNames: { '#agent': 'agent' },
          ExpressionAttributeValues: { ':a': agent },
        }),
      );
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }

  // ---- helpers

  private backReference(op: 'ADD' | 'DELETE', nodeId: string, dcId: string, mustExist = true) {
    return {
      Update: {
        TableName: this.table,
        Key: { kind: CACHE_NODE, id: nodeId },
        UpdateExpression: `${op} homedDataCenters :dc`,
        ...(mustExist ? { ConditionExpression: 'attribute_exists(id)' } : {}),
        ExpressionAttributeValues: { ':dc': new Set([dcId]) },
      },
    };
  }

  private async get(kind: string, id: string): Promise<Item | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.table, Key: { kind, id }, ConsistentRead: true }),
    );
    return out.Item;
  }

  private async query(kind: string, limit: number, cursor?: string): Promise<Page<Item>> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'kind = :k',
        ExpressionAttributeValues: { ':k': kind },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor, { attributes: ['kind', 'id'], fixed: { kind } }),
        ConsistentRead: true,
      }),
    );
    const next = encodeCursor(out.LastEvaluatedKey);
    return { items: out.Items ?? [], ...(next ? { nextCursor: next } : {}) };
  }
}

function describeCacheNodeBlockers(
  node: CacheNodeRecord,
): { message: string; details: Record<string, unknown> } | undefined {
  const reasons: string[] = [];
  if (node.homedDataCenters.length > 0) {
    reasons.push(`data centers ${node.homedDataCenters.join(', ')} name it as their home cache node`);
  }
  if (node.reservations.length > 0)
    reasons.push(`migrations ${node.reservations.join(', ')} are transferring through it`);
  if (reasons.length === 0) return undefined;
  return {
    message: `cache node "${node.id}" is in use: ${reasons.join('; ')}. Re-home those data centers, and set the node to draining until its transfers finish.`,
    details: { dataCenters: node.homedDataCenters, migrations: node.reservations },
  };
}

function activeMigrationsConflict(dc: DataCenterRecord) {
  return conflict(
    `data center "${dc.id}" has active migrations: ${dc.activeMigrations.join(', ')}. Wait for them to finish or cancel them.`,
    { migrations: dc.activeMigrations },
  );
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
