// MappingStore against a mocked DynamoDB: which index serves each filter, what is filtered where, how short pages
// are filled, and how rows are batch-written.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { MappingStore } from '../../../../lambdas/aws/mapping-store.ts';
import { encodeCursor } from '../../../../lambdas/aws/pagination.ts';
import { AppError } from '../../../../lambdas/domain/errors.ts';
import type { ContentMapRow } from '../../../../protocol/api/mapping.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const store = new MappingStore(
  DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'ap-northeast-1' })),
  {
    contentMap: 'ContentMap',
    locationMap: 'LocationMap',
  },
);

beforeEach(() => {
  ddb.reset();
  ddb.on(QueryCommand).resolves({ Items: [] });
  ddb.on(ScanCommand).resolves({ Items: [] });
});

/** What was sent: Scan or Query, on which index, keyed how, and which attributes were filtered. */
function sent() {
  const query = ddb.commandCalls(QueryCommand)[0]?.args[0].input as QueryCommandInput | undefined;
  const scan = ddb.commandCalls(ScanCommand)[0]?.args[0].input;
  const input = query ?? scan;
  const names = input?.ExpressionAttributeNames ?? {};
  const filtered = [...(input?.FilterExpression ?? '').matchAll(/#\w+/g)].map((m) => names[m[0]]).sort();
  const keyed = [...(query?.KeyConditionExpression ?? '').matchAll(/#\w+/g)].map((m) => names[m[0]]);
  return { command: query ? 'Query' : scan ? 'Scan' : 'none', index: input?.IndexName, keyed, filtered };
}

describe('index choice', () => {
  it.each([
    [{}, 'Scan', undefined, [], []],
    [{ migrationId: 'm' }, 'Query', undefined, ['migrationId'], []],
    [{ dataCenterId: 'dc-gz' }, 'Query', 'byDataCenter', ['dataCenterId'], []],
    [{ vmId: 'vm-1' }, 'Query', 'byVm', ['vmId'], []],
    [{ imageId: 'img' }, 'Query', 'byImage', ['imageId'], []],
    [{ cacheNodeId: 'hkg' }, 'Query', 'byCacheNode', ['cacheNodeId'], []],
    [{ hostId: 'h1' }, 'Scan', undefined, [], ['hostId']],
    [{ status: 'SRC' }, 'Scan', undefined, [], ['status']],
    [
      { migrationId: 'm', dataCenterId: 'dc-gz', status: 'DEST' },
      'Query',
      undefined,
      ['migrationId'],
      ['dataCenterId', 'status'],
    ],
    [{ vmId: 'vm-1', dataCenterId: 'dc-gz' }, 'Query', 'byDataCenter', ['dataCenterId'], ['vmId']],
    [
      { cacheNodeId: 'hkg', imageId: 'img', hostId: 'h' },
      'Query',
      'byImage',
      ['imageId'],
      ['cacheNodeId', 'hostId'],
    ],
  ])('ContentMap %j → %s %s', async (filters, command, index, keyed, filtered) => {
    await store.queryContentMap(filters, 10);
    expect(sent()).toEqual({ command, index, keyed, filtered });
  });

  it.each([
    [{}, 'Scan', undefined, [], []],
    [{ migrationId: 'm' }, 'Query', undefined, ['migrationId'], []],
    [{ sourceDataCenterId: 'dc-gz' }, 'Query', 'bySourceDataCenter', ['sourceDataCenterId'], []],
    [
      { destinationDataCenterId: 'dc-sh' },
      'Query',
      'byDestinationDataCenter',
      ['destinationDataCenterId'],
      [],
    ],
    [{ sourceCacheNodeId: 'hkg' }, 'Scan', undefined, [], ['sourceCacheNodeId']],
    // The table's sort key may not appear in a Query filter: it joins the key condition.
    [
      { migrationId: 'm', destinationDataCenterId: 'dc-sh' },
      'Query',
      undefined,
      ['migrationId', 'destinationDataCenterId'],
      [],
    ],
    [
      { sourceDataCenterId: 'dc-gz', destinationDataCenterId: 'dc-sh' },
      'Query',
      'bySourceDataCenter',
      ['sourceDataCenterId'],
      ['destinationDataCenterId'],
    ],
  ])('LocationMap %j → %s %s', async (filters, command, index, keyed, filtered) => {
    await store.queryLocationMap(filters, 10);
    expect(sent()).toEqual({ command, index, keyed, filtered });
  });

  it('queries newest first and binds the key value', async () => {
    await store.queryContentMap({ vmId: 'vm-1' }, 10);
    const input = ddb.commandCalls(QueryCommand)[0]?.args[0].input;
    expect(input).toMatchObject({ TableName: 'ContentMap', ScanIndexForward: false, Limit: 10 });
    expect(input?.ExpressionAttributeValues?.[':k']).toBe('vm-1');
  });
});

describe('pages', () => {
  const row = (dc: string) => ({
    migrationId: 'm',
    sourceDataCenterId: 'dc-gz',
    destinationDataCenterId: dc,
  });

  it('reads on until the page is full, and hands back the last key read as the cursor', async () => {
    const k1 = { migrationId: 'm', destinationDataCenterId: 'dc-a' };
    const k2 = { migrationId: 'm', destinationDataCenterId: 'dc-b' };
    ddb
      .on(QueryCommand)
      .resolvesOnce({ Items: [], LastEvaluatedKey: k1 })
      .resolvesOnce({ Items: [row('dc-b')], LastEvaluatedKey: k2 });
    const page = await store.queryLocationMap({ migrationId: 'm' }, 1);
    expect(page).toEqual({ items: [row('dc-b')], nextCursor: encodeCursor(k2) });
    const calls = ddb.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => [c.Limit, c.ExclusiveStartKey])).toEqual([
      [1, undefined],
      [1, k1],
    ]);
  });

  it('drops rows where the agent is neither end, and keeps reading to fill the page', async () => {
    ddb
      .on(QueryCommand)
      .resolvesOnce({
        Items: [row('dc-jkt'), row('dc-osa')],
        LastEvaluatedKey: { migrationId: 'm', destinationDataCenterId: 'dc-osa' },
      })
      .resolvesOnce({ Items: [row('dc-osa2')] });
    const anyOf = { attributes: ['sourceDataCenterId', 'destinationDataCenterId'], value: 'dc-osa' };
    const page = await store.queryLocationMap({ migrationId: 'm' }, 2, undefined, anyOf);
    expect(page).toEqual({ items: [row('dc-osa')] });
    expect(ddb.commandCalls(QueryCommand).map((c) => c.args[0].input.Limit)).toEqual([2, 1]);
  });

  it('strips the storage key from ContentMap rows', async () => {
    const r = { migrationId: 'm', status: 'SRC', dataCenterId: 'dc-gz', rowKey: 'SRC#dc-gz' };
    ddb.on(QueryCommand).resolves({ Items: [r] });
    const page = await store.queryContentMap({ migrationId: 'm' }, 10);
    expect(page.items[0]).not.toHaveProperty('rowKey');
  });

  it.each([
    ['garbage', 'garbage!', { dataCenterId: 'dc-gz' }],
    [
      'a cursor of another data center',
      encodeCursor({ migrationId: 'm', rowKey: 'SRC#dc-sh', dataCenterId: 'dc-sh', createdAt: 't' }),
      { dataCenterId: 'dc-gz' },
    ],
    [
      'a table cursor on an index',
      encodeCursor({ migrationId: 'm', rowKey: 'SRC#dc-gz' }),
      { dataCenterId: 'dc-gz' },
    ],
    [
      'an index cursor on a scan',
      encodeCursor({ migrationId: 'm', rowKey: 'x', vmId: 'v', createdAt: 't' }),
      {},
    ],
  ])('rejects %s before reading', async (_name, cursor, filters) => {
    const err = await store.queryContentMap(filters, 10, cursor).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).kind).toBe('validation');
    expect(ddb.commandCalls(QueryCommand).length + ddb.commandCalls(ScanCommand).length).toBe(0);
  });

  it('accepts the cursor it handed out', async () => {
    const key = { migrationId: 'm', rowKey: 'SRC#dc-gz', dataCenterId: 'dc-gz', createdAt: 't' };
    await store.queryContentMap({ dataCenterId: 'dc-gz' }, 10, encodeCursor(key));
    expect(ddb.commandCalls(QueryCommand)[0]?.args[0].input.ExclusiveStartKey).toEqual(key);
  });
});

describe('putRows', () => {
  const contentRow = (i: number): ContentMapRow => ({
    migrationId: 'm',
    status: i === 0 ? 'SRC' : 'DEST',
    dataCenterId: `dc-${i}`,
    dataCenterAddress: 'a',
    hostId: 'h',
    vmId: 'v',
    imageId: 'i',
    createdAt: 't',
  });

  it('writes in batches of 25 with the row key, and retries unprocessed items', async () => {
    const rows = Array.from({ length: 30 }, (_, i) => contentRow(i));
    const leftover = { ContentMap: [{ PutRequest: { Item: { ...contentRow(3), rowKey: 'DEST#dc-3' } } }] };
    ddb.on(BatchWriteCommand).resolvesOnce({ UnprocessedItems: leftover }).resolves({});
    await store.putRows(rows, []);
    const batches = ddb
      .commandCalls(BatchWriteCommand)
      .map((c) => c.args[0].input.RequestItems?.['ContentMap'] ?? []);
    expect(batches.map((b) => b.length)).toEqual([25, 1, 5]);
    expect(batches[1]).toEqual(leftover.ContentMap);
    expect(batches[0]?.[0]?.PutRequest?.Item).toMatchObject({ rowKey: 'SRC#dc-0', dataCenterId: 'dc-0' });
  });
});
