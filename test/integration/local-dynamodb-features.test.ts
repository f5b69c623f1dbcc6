// DynamoDB Local quirks the control plane depends on, checked against the real jar: conditional set ADD with
// size() compared to another attribute, reserved words, transactions with a ConditionCheck, GSI queries, TTL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  TransactionCanceledException,
  TransactWriteItemsCommand,
  UpdateItemCommand,
  type UpdateItemCommandOutput,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type DynamoDbLocal, startDynamoDbLocal } from '../../local/dynamodb.ts';
import { findFreePort } from '../../local/ports.ts';

let dataDir: string;
let server: DynamoDbLocal;
let db: DynamoDBClient;

async function createTable(
  name: string,
  extra: Partial<ConstructorParameters<typeof CreateTableCommand>[0]> = {},
) {
  await db.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      ...extra,
    }),
  );
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'vmmig-ddb-features-'));
  server = await startDynamoDbLocal({ dataDir, port: await findFreePort() });
  db = new DynamoDBClient({
    endpoint: server.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
});

afterAll(async () => {
  db?.destroy();
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('DynamoDB features the control plane relies on', () => {
  // Admission: one conditional ADD to a string set whose size is compared with another attribute of the item.
  const admit = (node: string, migration: string) =>
    db.send(
      new UpdateItemCommand({
        TableName: 'nodes',
        Key: { pk: { S: node } },
        UpdateExpression: 'ADD r :m',
        ConditionExpression:
          '#s = :active AND (attribute_not_exists(r) OR (size(r) < #cap AND NOT contains(r, :id)))',
        // CAPACITY and STATUS are DynamoDB reserved words: both need placeholders.
        ExpressionAttributeNames: { '#s': 'status', '#cap': 'capacity' },
        ExpressionAttributeValues: {
          ':m': { SS: [migration] },
          ':id': { S: migration },
          ':active': { S: 'ACTIVE' },
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
  const release = (node: string, migration: string) =>
    db.send(
      new UpdateItemCommand({
        TableName: 'nodes',
        Key: { pk: { S: node } },
        UpdateExpression: 'DELETE r :m',
        ExpressionAttributeValues: { ':m': { SS: [migration] } },
        ReturnValues: 'ALL_NEW',
      }),
    );

  const members = (out: UpdateItemCommandOutput): string[] | undefined => {
    const { r } = out.Attributes ?? {};
    return r?.SS?.sort();
  };

  it('refuses a bare `capacity` in an expression: CAPACITY is a reserved word, here as in DynamoDB', async () => {
    await createTable('reserved');
    const err = await db
      .send(
        new UpdateItemCommand({
          TableName: 'reserved',
          Key: { pk: { S: 'x' } },
          UpdateExpression: 'ADD r :m',
          ConditionExpression: 'attribute_not_exists(r) OR size(r) < capacity',
          ExpressionAttributeValues: { ':m': { SS: ['m'] } },
        }),
      )
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('ValidationException');
    expect((err as Error).message).toMatch(/reserved keyword: capacity/);
  });

  it('conditional ADD to a string set honours size(r) < capacity, contains and attribute_not_exists', async () => {
    await createTable('nodes');
    await db.send(
      new PutItemCommand({
        TableName: 'nodes',
        Item: { pk: { S: 'eu' }, capacity: { N: '2' }, status: { S: 'ACTIVE' } },
      }),
    );
    expect(members(await admit('eu', 'm1'))).toEqual(['m1']);
    await expect(admit('eu', 'm1')).rejects.toBeInstanceOf(ConditionalCheckFailedException); // already in
    expect(members(await admit('eu', 'm2'))).toEqual(['m1', 'm2']);
    await expect(admit('eu', 'm3')).rejects.toBeInstanceOf(ConditionalCheckFailedException); // full

    await release('eu', 'm1');
    expect(members(await admit('eu', 'm3'))).toEqual(['m2', 'm3']);
    // DELETE of an absent member is a no-op: release is idempotent.
    expect(members(await release('eu', 'm1'))).toEqual(['m2', 'm3']);
    // Removing the last members removes the attribute (no empty sets), so attribute_not_exists holds again.
    await release('eu', 'm2');
    expect(members(await release('eu', 'm3'))).toBeUndefined();
    expect(members(await admit('eu', 'm4'))).toEqual(['m4']);

    await db.send(
      new UpdateItemCommand({
        TableName: 'nodes',
        Key: { pk: { S: 'eu' } },
        UpdateExpression: 'SET #s = :d',
        ExpressionAttributeNames: { '#s': 'status' },
        ExpressionAttributeValues: { ':d': { S: 'DRAINING' } },
      }),
    );
    await expect(admit('eu', 'm5')).rejects.toBeInstanceOf(ConditionalCheckFailedException); // not active
  });

  it('TransactWriteItems with a ConditionCheck commits all or nothing', async () => {
    await createTable('txn');
    await db.send(
      new PutItemCommand({ TableName: 'txn', Item: { pk: { S: 'guard' }, open: { BOOL: true } } }),
    );
    const write = (open: boolean, id: string) =>
      db.send(
        new TransactWriteItemsCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: 'txn',
                Key: { pk: { S: 'guard' } },
                ConditionExpression: '#o = :t',
                ExpressionAttributeNames: { '#o': 'open' },
                ExpressionAttributeValues: { ':t': { BOOL: open } },
              },
            },
            {
              Put: {
                TableName: 'txn',
                Item: { pk: { S: id } },
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
          ],
        }),
      );
    await write(true, 'x1');
    expect(
      (await db.send(new GetItemCommand({ TableName: 'txn', Key: { pk: { S: 'x1' } } }))).Item,
    ).toBeDefined();

    const failed = await write(false, 'x2').catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(TransactionCanceledException);
    expect((failed as TransactionCanceledException).CancellationReasons?.map((r) => r.Code)).toEqual([
      'ConditionalCheckFailed',
      'None',
    ]);
    expect(
      (await db.send(new GetItemCommand({ TableName: 'txn', Key: { pk: { S: 'x2' } } }))).Item,
    ).toBeUndefined();
  });

  it('queries a global secondary index and sees writes immediately', async () => {
    await createTable('indexed', {
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'node', AttributeType: 'S' },
        { AttributeName: 'digest', AttributeType: 'S' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'byNode',
          KeySchema: [
            { AttributeName: 'node', KeyType: 'HASH' },
            { AttributeName: 'digest', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
    for (const [pk, node, digest] of [
      ['a', 'eu', 'd2'],
      ['b', 'eu', 'd1'],
      ['c', 'us', 'd3'],
    ] as const) {
      await db.send(
        new PutItemCommand({
          TableName: 'indexed',
          Item: { pk: { S: pk }, node: { S: node }, digest: { S: digest } },
        }),
      );
    }
    const { Items } = await db.send(
      new QueryCommand({
        TableName: 'indexed',
        IndexName: 'byNode',
        KeyConditionExpression: '#n = :n',
        ExpressionAttributeNames: { '#n': 'node' },
        ExpressionAttributeValues: { ':n': { S: 'eu' } },
      }),
    );
    expect(Items?.map(({ digest }) => digest?.S)).toEqual(['d1', 'd2']);
    await db.send(new DeleteItemCommand({ TableName: 'indexed', Key: { pk: { S: 'b' } } }));
    const after = await db.send(
      new QueryCommand({
        TableName: 'indexed',
        IndexName: 'byNode',
        KeyConditionExpression: '#n = :n',
        ExpressionAttributeNames: { '#n': 'node' },
        ExpressionAttributeValues: { ':n': { S: 'eu' } },
      }),
    );
    expect(after.Count).toBe(1);
  });

  it('enables TTL, and Local deletes expired items in the background (real DynamoDB may take days)', async () => {
    await createTable('expiring');
    await db.send(
      new UpdateTimeToLiveCommand({
        TableName: 'expiring',
        TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
      }),
    );
    const { TimeToLiveDescription } = await db.send(new DescribeTimeToLiveCommand({ TableName: 'expiring' }));
    expect(TimeToLiveDescription).toEqual({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAt' });

    const past = Math.floor(Date.now() / 1000) - 60;
    await db.send(
      new PutItemCommand({ TableName: 'expiring', Item: { pk: { S: 'old' }, expiresAt: { N: `${past}` } } }),
    );
    await db.send(new PutItemCommand({ TableName: 'expiring', Item: { pk: { S: 'kept' } } }));
    // No event to await: Local's TTL sweep runs on its own timer (observed: within ~10 s).
    await vi.waitFor(
      async () => {
        const { Item } = await db.send(
          new GetItemCommand({ TableName: 'expiring', Key: { pk: { S: 'old' } } }),
        );
        expect(Item).toBeUndefined();
      },
      { timeout: 40_000, interval: 250 },
    );
    expect(
      (await db.send(new GetItemCommand({ TableName: 'expiring', Key: { pk: { S: 'kept' } } }))).Item,
    ).toBeDefined();
  }, 60_000);
});
