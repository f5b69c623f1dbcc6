// NodeSlots (DESIGN §4 admission): one conditional ADD takes a slot, and a failed condition is explained by one
// consistent read as full, not active or unknown. Releases never create items.
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { NodeSlots } from '../../../../lambdas/aws/node-slots.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const slots = new NodeSlots(
  DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'ap-northeast-1' })),
  'Registry',
);
const MIG = 'mig-aaaaaaaaaaaaaaaaaaaa';
const failed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

beforeEach(() => ddb.reset());

describe('reserve', () => {
  it('is one conditional ADD: node exists and (already holds it, or is active and below capacity)', async () => {
    ddb.on(UpdateCommand).resolves({});
    expect(await slots.reserve('hkg', MIG)).toBe('reserved');
    expect(ddb.commandCalls(UpdateCommand).map((c) => c.args[0].input)).toEqual([
      {
        TableName: 'Registry',
        Key: { kind: 'cacheNode', id: 'hkg' },
        UpdateExpression: 'ADD reservations :m',
        ConditionExpression:
          'attribute_exists(id) AND (contains(reservations, :id) OR (#s = :active AND ' +
          '(attribute_not_exists(reservations) OR size(reservations) < #cap)))',
        ExpressionAttributeNames: { '#s': 'status', '#cap': 'capacity' },
        ExpressionAttributeValues: { ':m': new Set([MIG]), ':id': MIG, ':active': 'active' },
      },
    ]);
    expect(ddb.commandCalls(GetCommand)).toHaveLength(0);
  });

  it.each([
    [{ Item: { id: 'hkg', status: 'active', capacity: 1, reservations: new Set(['mig-other']) } }, 'full'],
    [{ Item: { id: 'hkg', status: 'draining', capacity: 8 } }, 'not_active'],
    [{ Item: { id: 'hkg', status: 'down', capacity: 8 } }, 'not_active'],
    [{}, 'unknown_node'],
  ])('a failed condition with the node read back as %j is %s', async (read, outcome) => {
    ddb.on(UpdateCommand).rejects(failed());
    ddb.on(GetCommand).resolves(read);
    expect(await slots.reserve('hkg', MIG)).toBe(outcome);
    expect(ddb.commandCalls(GetCommand)[0]?.args[0].input).toEqual({
      TableName: 'Registry',
      Key: { kind: 'cacheNode', id: 'hkg' },
      ConsistentRead: true,
    });
  });

  it('passes other errors through', async () => {
    ddb.on(UpdateCommand).rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    await expect(slots.reserve('hkg', MIG)).rejects.toThrow('slow down');
  });
});

describe('release and active migrations', () => {
  it('release DELETEs the member only from an existing node, and a missing node is fine', async () => {
    ddb.on(UpdateCommand).rejects(failed());
    await slots.release('hkg', MIG);
    expect(ddb.commandCalls(UpdateCommand)[0]?.args[0].input).toMatchObject({
      Key: { kind: 'cacheNode', id: 'hkg' },
      UpdateExpression: 'DELETE #a :m',
      ConditionExpression: 'attribute_exists(id)',
      ExpressionAttributeNames: { '#a': 'reservations' },
      ExpressionAttributeValues: { ':m': new Set([MIG]) },
    });
  });

  it('addActiveMigration is true on a data center, false when it is gone', async () => {
    ddb.on(UpdateCommand).resolvesOnce({}).rejects(failed());
    expect(await slots.addActiveMigration('dc-gz', MIG)).toBe(true);
    expect(await slots.addActiveMigration('dc-gone', MIG)).toBe(false);
    expect(ddb.commandCalls(UpdateCommand)[0]?.args[0].input).toMatchObject({
      Key: { kind: 'dataCenter', id: 'dc-gz' },
      UpdateExpression: 'ADD activeMigrations :m',
      ConditionExpression: 'attribute_exists(id)',
    });
  });

  it('removeActiveMigration deletes from the data center set', async () => {
    ddb.on(UpdateCommand).resolves({});
    await slots.removeActiveMigration('dc-gz', MIG);
    expect(ddb.commandCalls(UpdateCommand)[0]?.args[0].input).toMatchObject({
      Key: { kind: 'dataCenter', id: 'dc-gz' },
      ExpressionAttributeNames: { '#a': 'activeMigrations' },
    });
  });
});
