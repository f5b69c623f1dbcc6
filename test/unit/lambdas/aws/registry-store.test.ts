// RegistryStore against a mocked DynamoDB: the exact conditional writes and transactions that keep a data center
// and its home cache node's back-reference consistent, and the conflicts raised before anything is written.
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { RegistryStore } from '../../../../lambdas/aws/registry-store.ts';
import { AppError } from '../../../../lambdas/domain/errors.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const doc = DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'ap-northeast-1' }));
const NOW = '2026-11-25T08:00:00.000Z';
const EARLIER = '2026-11-01T00:00:00.000Z';
const store = new RegistryStore(doc, 'Registry', () => new Date(NOW));

const INPUT = { name: 'Kyoto DC', address: '10.9.0.10', location: { lat: 35.0, lon: 135.77 } };
const dcKey = (id: string) => ({ kind: 'dataCenter', id });
const nodeKey = (id: string) => ({ kind: 'cacheNode', id });
const dcItem = (extra: Record<string, unknown> = {}) => ({
  ...dcKey('dc-x'),
  ...INPUT,
  createdAt: EARLIER,
  updatedAt: EARLIER,
  ...extra,
});
const backRef = (op: 'ADD' | 'DELETE', node: string, mustExist: boolean) => ({
  Update: {
    TableName: 'Registry',
    Key: nodeKey(node),
    UpdateExpression: `${op} homedDataCenters :dc`,
    ...(mustExist ? { ConditionExpression: 'attribute_exists(id)' } : {}),
    ExpressionAttributeValues: { ':dc': new Set(['dc-x']) },
  },
});
const transactItems = () => ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems);
const cancelled = () => new TransactionCanceledException({ message: 'cancelled', $metadata: {} });
const rejection = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
};

beforeEach(() => {
  ddb.reset();
  ddb.on(TransactWriteCommand).resolves({});
});

describe('putDataCenter', () => {
  it('creates a data center and adds it to its home node in one transaction', async () => {
    ddb
      .on(GetCommand, { Key: dcKey('dc-x') })
      .resolvesOnce({})
      .resolves({ Item: dcItem({ homeCacheNode: 'hkg', createdAt: NOW, updatedAt: NOW }) });
    const out = await store.putDataCenter('dc-x', { ...INPUT, homeCacheNode: 'hkg' });
    expect(out.created).toBe(true);
    expect(transactItems()).toEqual([
      [
        {
          Put: {
            TableName: 'Registry',
            Item: { ...dcKey('dc-x'), ...INPUT, homeCacheNode: 'hkg', createdAt: NOW, updatedAt: NOW },
            ConditionExpression: 'attribute_not_exists(id)',
          },
        },
        backRef('ADD', 'hkg', true),
      ],
    ]);
  });

  it('creates one without a home with a single Put and no back-reference', async () => {
    ddb
      .on(GetCommand, { Key: dcKey('dc-x') })
      .resolvesOnce({})
      .resolves({ Item: dcItem() });
    await store.putDataCenter('dc-x', { ...INPUT, homeCacheNode: undefined });
    const items = transactItems()[0] ?? [];
    expect(items).toHaveLength(1);
    expect(items[0]?.Put?.Item).not.toHaveProperty('homeCacheNode');
  });

  it('changes the home: guarded update, ADD to the new node (must exist), DELETE from the old', async () => {
    ddb.on(GetCommand, { Key: dcKey('dc-x') }).resolves({ Item: dcItem({ homeCacheNode: 'hkg' }) });
    const out = await store.putDataCenter('dc-x', { ...INPUT, homeCacheNode: 'nrt' });
    expect(out.created).toBe(false);
    expect(transactItems()).toEqual([
      [
        {
          Update: {
            TableName: 'Registry',
            Key: dcKey('dc-x'),
            UpdateExpression: 'SET #n = :n, address = :a, #l = :l, updatedAt = :u, homeCacheNode = :h',
            ConditionExpression: 'attribute_exists(id) AND homeCacheNode = :oldHome',
            ExpressionAttributeNames: { '#n': 'name', '#l': 'location' },
            ExpressionAttributeValues: {
              ':n': INPUT.name,
              ':a': INPUT.address,
              ':l': INPUT.location,
              ':u': NOW,
              ':h': 'nrt',
              ':oldHome': 'hkg',
            },
          },
        },
        backRef('ADD', 'nrt', true),
        backRef('DELETE', 'hkg', false),
      ],
    ]);
  });

  it('removes the home: REMOVE on the data center, DELETE from the old node, nothing added', async () => {
    ddb.on(GetCommand, { Key: dcKey('dc-x') }).resolves({ Item: dcItem({ homeCacheNode: 'hkg' }) });
    await store.putDataCenter('dc-x', INPUT);
    const [update, ...rest] = transactItems()[0] ?? [];
    expect(update?.Update?.UpdateExpression).toBe(
      'SET #n = :n, address = :a, #l = :l, updatedAt = :u REMOVE homeCacheNode',
    );
    expect(update?.Update?.ExpressionAttributeValues).not.toHaveProperty(':h');
    expect(update?.Update?.ConditionExpression).toBe('attribute_exists(id) AND homeCacheNode = :oldHome');
    expect(rest).toEqual([backRef('DELETE', 'hkg', false)]);
  });

  it('keeps the same home without touching the node', async () => {
    ddb.on(GetCommand, { Key: dcKey('dc-x') }).resolves({ Item: dcItem({ homeCacheNode: 'hkg' }) });
    await store.putDataCenter('dc-x', { ...INPUT, homeCacheNode: 'hkg' });
    expect(transactItems()[0]).toHaveLength(1);
  });

  it('an unknown home cache node is a 400 on homeCacheNode', async () => {
    ddb.on(GetCommand, { Key: dcKey('dc-x') }).resolves({});
    ddb.on(GetCommand, { Key: nodeKey('nope') }).resolves({});
    ddb.on(TransactWriteCommand).rejects(cancelled());
    const err = await rejection(store.putDataCenter('dc-x', { ...INPUT, homeCacheNode: 'nope' }));
    expect(err.kind).toBe('validation');
    expect(err.details.issues?.[0]?.field).toBe('homeCacheNode');
  });

  it('a concurrent change of the home is a conflict to retry', async () => {
    ddb.on(GetCommand, { Key: dcKey('dc-x') }).resolves({ Item: dcItem({ homeCacheNode: 'hkg' }) });
    ddb.on(GetCommand, { Key: nodeKey('nrt') }).resolves({ Item: { ...nodeKey('nrt') } });
    ddb.on(TransactWriteCommand).rejects(cancelled());
    expect((await rejection(store.putDataCenter('dc-x', { ...INPUT, homeCacheNode: 'nrt' }))).kind).toBe(
      'conflict',
    );
  });
});

describe('deleteDataCenter', () => {
  it('deletes the data center and its back-reference in one guarded transaction', async () => {
    ddb.on(GetCommand, { Key: dcKey('dc-x') }).resolves({ Item: dcItem({ homeCacheNode: 'hkg' }) });
    await store.deleteDataCenter('dc-x');
    expect(transactItems()).toEqual([
      [
        {
          Delete: {
            TableName: 'Registry',
            Key: dcKey('dc-x'),
            ConditionExpression:
              'attribute_exists(id) AND attribute_not_exists(activeMigrations) AND homeCacheNode = :h',
            ExpressionAttributeValues: { ':h': 'hkg' },
          },
        },
        backRef('DELETE', 'hkg', false),
      ],
    ]);
  });

  it('refuses while migrations are active, naming them, without writing', async () => {
    ddb.on(GetCommand).resolves({ Item: dcItem({ activeMigrations: new Set(['mig-b', 'mig-a']) }) });
    const err = await rejection(store.deleteDataCenter('dc-x'));
    expect(err.kind).toBe('conflict');
    expect(err.details['migrations']).toEqual(['mig-a', 'mig-b']);
    expect(transactItems()).toEqual([]);
  });

  it('names a migration that arrived between the read and the delete', async () => {
    ddb
      .on(GetCommand)
      .resolvesOnce({ Item: dcItem() })
      .resolves({ Item: dcItem({ activeMigrations: new Set(['mig-late']) }) });
    ddb.on(TransactWriteCommand).rejects(cancelled());
    const err = await rejection(store.deleteDataCenter('dc-x'));
    expect(err.details['migrations']).toEqual(['mig-late']);
  });

  it('an unknown data center is a 404', async () => {
    ddb.on(GetCommand).resolves({});
    expect((await rejection(store.deleteDataCenter('dc-x'))).kind).toBe('not_found');
  });
});

describe('cache nodes', () => {
  const node = {
    name: 'Tokyo',
    region: 'ap-northeast-1',
    location: { lat: 35.68, lon: 139.69 },
    capacity: 8,
  };
  const nodeItem = (extra: Record<string, unknown> = {}) => ({
    ...nodeKey('nrt'),
    ...node,
    status: 'active',
    bucket: 'b',
    createdAt: EARLIER,
    updatedAt: EARLIER,
    ...extra,
  });

  it('replacing updates only the given fields: reservations, homes, bucket and createdAt stay', async () => {
    ddb.on(GetCommand).resolves({ Item: nodeItem({ reservations: new Set(['mig-a']) }) });
    ddb
      .on(UpdateCommand)
      .resolves({ Attributes: nodeItem({ reservations: new Set(['mig-a']), capacity: 4 }) });
    const out = await store.putCacheNode('nrt', { ...node, capacity: 4, status: 'draining', bucket: 'b' });
    expect(out).toMatchObject({ created: false, node: { reservations: ['mig-a'] } });
    const input = ddb.commandCalls(UpdateCommand)[0]?.args[0].input;
    // budgetBytes: a replacement without a budget has none (REMOVE), like any field PUT leaves out.
    expect(Object.values(input?.ExpressionAttributeNames ?? {}).sort()).toEqual(
      ['budgetBytes', 'capacity', 'location', 'name', 'status', 'updatedAt'].sort(),
    );
    expect(input?.UpdateExpression).toMatch(/ REMOVE #r0$/);
    expect(input?.ExpressionAttributeNames?.['#r0']).toBe('budgetBytes');
    expect(input?.ConditionExpression).toBe('attribute_exists(id)');
  });

  it('refuses a region change before writing', async () => {
    ddb.on(GetCommand).resolves({ Item: nodeItem() });
    const err = await rejection(
      store.putCacheNode('nrt', { ...node, region: 'us-east-1', status: 'active', bucket: 'b' }),
    );
    expect(err).toMatchObject({ kind: 'conflict', details: { field: 'region' } });
    expect(ddb.commandCalls(UpdateCommand).length + ddb.commandCalls(PutCommand).length).toBe(0);
  });

  it('patching an unknown node is a 404 (the update is conditional, never an upsert)', async () => {
    ddb.on(UpdateCommand).rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    expect((await rejection(store.patchCacheNode('zzz', { status: 'down' }))).kind).toBe('not_found');
  });

  it('refuses to delete a node that is a home or holds slots, naming both', async () => {
    ddb.on(GetCommand).resolves({
      Item: nodeItem({ homedDataCenters: new Set(['dc-gz']), reservations: new Set(['mig-a']) }),
    });
    const err = await rejection(store.deleteCacheNode('nrt'));
    expect(err.details).toEqual({ dataCenters: ['dc-gz'], migrations: ['mig-a'] });
    expect(ddb.commandCalls(DeleteCommand)).toHaveLength(0);
  });

  it('deletes an unused node only while it has no homes and no reservations', async () => {
    ddb.on(GetCommand).resolves({ Item: nodeItem() });
    ddb.on(DeleteCommand).resolves({});
    await store.deleteCacheNode('nrt');
    expect(ddb.commandCalls(DeleteCommand)[0]?.args[0].input.ConditionExpression).toBe(
      'attribute_exists(id) AND attribute_not_exists(homedDataCenters) AND attribute_not_exists(reservations)',
    );
  });
});

describe('listing', () => {
  it('rejects a cursor of another kind without querying', async () => {
    const cursor = Buffer.from(JSON.stringify(nodeKey('hkg'))).toString('base64url');
    expect((await rejection(store.listDataCenters(10, cursor))).kind).toBe('validation');
    expect(ddb.commandCalls(QueryCommand)).toHaveLength(0);
  });
});
