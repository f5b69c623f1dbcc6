// ContentIndex claims: copy claims per (destination cache node, chunk) are one conditional put each under
// `#copy-claims#<node>`, expire with the CopyBatch task that takes them, can be taken over from a named migration,
// are read back 100 keys per call, and are released only by their owner. Upload claims keep their shape.
//
// Entries and cache space: a record is one conditional put per chunk (refused where the collector is deleting it)
// and grows the node's usage item by what was new; holders and touch ignore entries being deleted; a removal
// shrinks the usage only when there was an entry; the collector's transitions are conditional writes.
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  BATCH_GET_LIMIT,
  CLAIM_TTL_SECONDS,
  COPY_CLAIM_TTL_SECONDS,
  ContentIndex,
  type IndexEntry,
  USAGE_SK,
} from '../../../../lambdas/aws/content-index.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const NOW = new Date('2026-12-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;
const index = new ContentIndex(
  DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'ap-northeast-1' })),
  'ContentIndex',
  () => NOW,
);
const ME = 'mig-aaaaaaaaaaaaaaaaaaaa';
const OTHER = 'mig-bbbbbbbbbbbbbbbbbbbb';
const sha = (n: number) => n.toString(16).padStart(64, '0');
/** A failed condition as lib-dynamodb reports it: the old item still marshalled. */
const heldBy = (owner: string) =>
  Object.assign(
    new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
    {
      Item: { migrationId: { S: owner } },
    },
  );
const puts = () => ddb.commandCalls(PutCommand).map((c) => c.args[0].input);
const updates = () => ddb.commandCalls(UpdateCommand).map((c) => c.args[0].input);
const deletes = () => ddb.commandCalls(DeleteCommand).map((c) => c.args[0].input);
const conditionFailed = () =>
  new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
const ISO = NOW.toISOString();
/** The usage item's update: the node's bytes and chunks held grow (or shrink) by these. */
const usageAdd = (node: string, bytes: number, chunks: number) => ({
  TableName: 'ContentIndex',
  Key: { cacheNodeId: node, sha256: '#usage' },
  UpdateExpression: 'ADD bytesHeld :b, chunksHeld :c',
  ExpressionAttributeValues: { ':b': bytes, ':c': chunks },
});

beforeEach(() => ddb.reset());

describe('claimCopies', () => {
  it('is one conditional put per chunk under the node, expiring with the CopyBatch task', async () => {
    ddb.on(PutCommand).resolves({});
    const out = await index.claimCopies('nrt', [sha(1), sha(2)], ME);
    expect(out).toEqual({ mine: new Set([sha(1), sha(2)]), others: new Map() });
    expect(COPY_CLAIM_TTL_SECONDS).toBe(900); // the ASL's TimeoutSeconds for CopyBatch
    expect(puts()[0]).toEqual({
      TableName: 'ContentIndex',
      Item: { cacheNodeId: '#copy-claims#nrt', sha256: sha(1), migrationId: ME, expiresAt: NOW_S + 900 },
      ConditionExpression: 'attribute_not_exists(sha256) OR migrationId = :me OR expiresAt < :now',
      ExpressionAttributeValues: { ':me': ME, ':now': NOW_S },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('reports who holds the claims it could not take', async () => {
    ddb
      .on(PutCommand, { Item: { sha256: sha(1) } })
      .resolves({})
      .on(PutCommand, { Item: { sha256: sha(2) } })
      .rejects(heldBy(OTHER));
    expect(await index.claimCopies('nrt', [sha(1), sha(2)], ME)).toEqual({
      mine: new Set([sha(1)]),
      others: new Map([[sha(2), OTHER]]),
    });
  });

  it('takes a claim over only from the migration named for that chunk', async () => {
    ddb.on(PutCommand).resolves({});
    await index.claimCopies('nrt', [sha(1), sha(2)], ME, new Map([[sha(2), OTHER]]));
    const [first, second] = puts();
    expect(first?.ConditionExpression).not.toContain('IN');
    expect(second).toMatchObject({
      ConditionExpression:
        'attribute_not_exists(sha256) OR migrationId = :me OR expiresAt < :now OR migrationId IN (:t0)',
      ExpressionAttributeValues: { ':me': ME, ':now': NOW_S, ':t0': OTHER },
    });
  });

  it('lets every put settle on an error, releases what it took, and throws the error', async () => {
    ddb
      .on(PutCommand)
      .resolves({})
      .on(PutCommand, { Item: { sha256: sha(2) } })
      .rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    ddb.on(DeleteCommand).resolves({});
    await expect(index.claimCopies('nrt', [sha(1), sha(2), sha(3)], ME)).rejects.toThrow('slow down');
    expect(puts()).toHaveLength(3);
    expect(
      ddb
        .commandCalls(DeleteCommand)
        .map((c) => c.args[0].input.Key?.['sha256'])
        .sort(),
    ).toEqual([sha(1), sha(3)]);
  });
});

describe('copyClaimHolders', () => {
  it('reads 100 keys per call, consistently, and leaves expired claims out', async () => {
    const digests = Array.from({ length: 250 }, (_, n) => sha(n));
    ddb
      .on(BatchGetCommand)
      .callsFake((input: { RequestItems: Record<string, { Keys: { sha256: string }[] }> }) => {
        const asked = new Set(input.RequestItems['ContentIndex']?.Keys.map((k) => k.sha256));
        const items = [
          { sha256: sha(1), migrationId: OTHER, expiresAt: NOW_S + 10 },
          { sha256: sha(2), migrationId: OTHER, expiresAt: NOW_S - 1 }, // expired: free to take
          { sha256: sha(200), migrationId: ME, expiresAt: NOW_S },
        ];
        return { Responses: { ContentIndex: items.filter((i) => asked.has(i.sha256)) } };
      });
    const holders = await index.copyClaimHolders('nrt', digests);
    const calls = ddb.commandCalls(BatchGetCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.RequestItems?.['ContentIndex']?.Keys?.length)).toEqual([100, 100, 50]);
    expect(calls.every((c) => c.RequestItems?.['ContentIndex']?.ConsistentRead)).toBe(true);
    expect(calls[0]?.RequestItems?.['ContentIndex']?.Keys?.[0]).toEqual({
      cacheNodeId: '#copy-claims#nrt',
      sha256: sha(0),
    });
    expect(BATCH_GET_LIMIT).toBe(100);
    expect(holders).toEqual(
      new Map([
        [sha(1), OTHER],
        [sha(200), ME],
      ]),
    );
  });

  it('asks again for unprocessed keys', async () => {
    ddb
      .on(BatchGetCommand)
      .resolvesOnce({
        Responses: { ContentIndex: [] },
        UnprocessedKeys: { ContentIndex: { Keys: [{ cacheNodeId: '#copy-claims#nrt', sha256: sha(1) }] } },
      })
      .resolves({
        Responses: {
          ContentIndex: [{ sha256: sha(1), migrationId: OTHER, expiresAt: NOW_S + 5 }],
        },
      });
    expect(await index.copyClaimHolders('nrt', [sha(1)])).toEqual(new Map([[sha(1), OTHER]]));
    expect(ddb.commandCalls(BatchGetCommand)).toHaveLength(2);
  });
});

describe('releaseCopies', () => {
  it('deletes only claims this migration still holds; one taken over meanwhile is left alone', async () => {
    ddb
      .on(DeleteCommand)
      .resolves({})
      .on(DeleteCommand, { Key: { sha256: sha(2) } })
      .rejects(new ConditionalCheckFailedException({ message: 'no', $metadata: {} }));
    await index.releaseCopies('nrt', [sha(1), sha(2)], ME);
    expect(ddb.commandCalls(DeleteCommand)[0]?.args[0].input).toEqual({
      TableName: 'ContentIndex',
      Key: { cacheNodeId: '#copy-claims#nrt', sha256: sha(1) },
      ConditionExpression: 'migrationId = :me',
      ExpressionAttributeValues: { ':me': ME },
    });
  });
});

describe('claimUploads (unchanged)', () => {
  it('one put per chunk under #upload-claims, taking over from any of the ended migrations', async () => {
    ddb.on(PutCommand).resolves({});
    await index.claimUploads([sha(1)], ME, new Set([OTHER, 'mig-cccccccccccccccccccc']));
    expect(puts()[0]).toEqual({
      TableName: 'ContentIndex',
      Item: {
        cacheNodeId: '#upload-claims',
        sha256: sha(1),
        migrationId: ME,
        expiresAt: NOW_S + CLAIM_TTL_SECONDS,
      },
      ConditionExpression:
        'attribute_not_exists(sha256) OR migrationId = :me OR expiresAt < :now OR migrationId IN (:t0, :t1)',
      ExpressionAttributeValues: {
        ':me': ME,
        ':now': NOW_S,
        ':t0': OTHER,
        ':t1': 'mig-cccccccccccccccccccc',
      },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });
});

describe('holders', () => {
  it('reads consistently, with the deleting mark, and does not count an entry the collector is deleting', async () => {
    ddb.on(BatchGetCommand).resolves({
      Responses: {
        ContentIndex: [
          { cacheNodeId: 'nrt', sha256: sha(1) },
          { cacheNodeId: 'hkg', sha256: sha(1) },
          { cacheNodeId: 'nrt', sha256: sha(2), deleting: '2026-11-30T00:00:00.000Z' },
        ],
      },
    });
    const held = await index.holders([sha(1), sha(2)], ['nrt', 'hkg']);
    expect(held).toEqual(new Map([[sha(1), new Set(['nrt', 'hkg'])]]));
    const input = ddb.commandCalls(BatchGetCommand)[0]?.args[0].input;
    expect(input?.RequestItems?.['ContentIndex']).toEqual({
      Keys: [
        { cacheNodeId: 'nrt', sha256: sha(1) },
        { cacheNodeId: 'nrt', sha256: sha(2) },
        { cacheNodeId: 'hkg', sha256: sha(1) },
        { cacheNodeId: 'hkg', sha256: sha(2) },
      ],
      ProjectionExpression: 'cacheNodeId, sha256, deleting',
      ConsistentRead: true,
    });
  });
});

describe('record', () => {
  it('is one put per chunk, refused where the collector is deleting it, returning what it replaced', async () => {
    ddb.on(PutCommand).resolves({});
    ddb.on(UpdateCommand).resolves({});
    await index.record('nrt', [{ sha256: sha(1), length: 1000 }]);
    expect(puts()).toEqual([
      {
        TableName: 'ContentIndex',
        Item: { cacheNodeId: 'nrt', sha256: sha(1), length: 1000, storedAt: ISO, usedAt: ISO },
        ConditionExpression: 'attribute_not_exists(deleting)',
        ReturnValues: 'ALL_OLD',
      },
    ]);
  });

  it('grows the node usage by the chunks new there only', async () => {
    ddb
      .on(PutCommand)
      .resolves({})
      .on(PutCommand, { Item: { sha256: sha(2) } })
      .resolves({ Attributes: { cacheNodeId: 'nrt', sha256: sha(2), length: 2000, storedAt: 'earlier' } });
    ddb.on(UpdateCommand).resolves({});
    const out = await index.record('nrt', [
      { sha256: sha(1), length: 1000 },
      { sha256: sha(2), length: 2000 },
      { sha256: sha(3), length: 3000 },
    ]);
    expect(out).toEqual({ addedBytes: 4000, addedChunks: 2, refused: [] });
    expect(puts()).toHaveLength(3);
    expect(updates()).toEqual([usageAdd('nrt', 4000, 2)]);
  });

  it('touches no usage when every chunk was indexed already', async () => {
    ddb.on(PutCommand).resolves({ Attributes: { cacheNodeId: 'nrt', sha256: sha(1), length: 1000 } });
    expect(await index.record('nrt', [{ sha256: sha(1), length: 1000 }])).toEqual({
      addedBytes: 0,
      addedChunks: 0,
      refused: [],
    });
    expect(updates()).toEqual([]);
  });

  it('reports a chunk the collector is deleting as refused, and does not count it', async () => {
    ddb
      .on(PutCommand)
      .resolves({})
      .on(PutCommand, { Item: { sha256: sha(2) } })
      .rejects(conditionFailed());
    ddb.on(UpdateCommand).resolves({});
    expect(
      await index.record('nrt', [
        { sha256: sha(1), length: 1000 },
        { sha256: sha(2), length: 2000 },
      ]),
    ).toEqual({ addedBytes: 1000, addedChunks: 1, refused: [sha(2)] });
    expect(updates()).toEqual([usageAdd('nrt', 1000, 1)]);
  });

  it('on another error, counts what was added all the same, then throws', async () => {
    ddb
      .on(PutCommand)
      .resolves({})
      .on(PutCommand, { Item: { sha256: sha(2) } })
      .rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    ddb.on(UpdateCommand).resolves({});
    await expect(
      index.record('nrt', [
        { sha256: sha(1), length: 1000 },
        { sha256: sha(2), length: 2000 },
        { sha256: sha(3), length: 3000 },
      ]),
    ).rejects.toThrow('slow down');
    expect(puts()).toHaveLength(3);
    expect(updates()).toEqual([usageAdd('nrt', 4000, 2)]);
  });
});

describe('touch', () => {
  it('marks each chunk used where its entry exists and is not being deleted; returns those', async () => {
    ddb
      .on(UpdateCommand)
      .resolves({})
      .on(UpdateCommand, { Key: { sha256: sha(2) } })
      .rejects(conditionFailed());
    expect(await index.touch('nrt', [sha(1), sha(2), sha(3)])).toEqual(new Set([sha(1), sha(3)]));
    expect(updates()[0]).toEqual({
      TableName: 'ContentIndex',
      Key: { cacheNodeId: 'nrt', sha256: sha(1) },
      UpdateExpression: 'SET usedAt = :at REMOVE condemnedAt',
      ConditionExpression: 'attribute_exists(sha256) AND attribute_not_exists(deleting)',
      ExpressionAttributeValues: { ':at': ISO },
    });
    expect(updates()).toHaveLength(3);
  });

  it('throws any other error, after every update settled', async () => {
    ddb
      .on(UpdateCommand)
      .resolves({})
      .on(UpdateCommand, { Key: { sha256: sha(1) } })
      .rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    await expect(index.touch('nrt', [sha(1), sha(2)])).rejects.toThrow('slow down');
    expect(updates()).toHaveLength(2);
  });

  it('asks nothing for no chunks', async () => {
    expect(await index.touch('nrt', [])).toEqual(new Set());
    expect(ddb.calls()).toHaveLength(0);
  });
});

describe('remove', () => {
  it('deletes the entry and shrinks the node usage by its length', async () => {
    ddb.on(DeleteCommand).resolves({ Attributes: { cacheNodeId: 'nrt', sha256: sha(1), length: 1234 } });
    ddb.on(UpdateCommand).resolves({});
    expect(await index.remove('nrt', sha(1))).toBe(true);
    expect(deletes()).toEqual([
      {
        TableName: 'ContentIndex',
        Key: { cacheNodeId: 'nrt', sha256: sha(1) },
        // An entry the collector is deleting is left to it.
        ConditionExpression: 'attribute_not_exists(deleting)',
        ReturnValues: 'ALL_OLD',
      },
    ]);
    expect(updates()).toEqual([usageAdd('nrt', -1234, -1)]);
  });

  it('leaves the usage alone when there was no entry', async () => {
    ddb.on(DeleteCommand).resolves({});
    expect(await index.remove('nrt', sha(1))).toBe(false);
    expect(updates()).toEqual([]);
  });
});

describe('entries', () => {
  it('queries chunk digests only: the usage item sorts before every digest', async () => {
    expect(USAGE_SK < '0').toBe(true);
    ddb.on(QueryCommand).resolves({
      Items: [{ cacheNodeId: 'nrt', sha256: sha(1), length: 1000, storedAt: ISO }],
      LastEvaluatedKey: { cacheNodeId: 'nrt', sha256: sha(1) },
    });
    expect(await index.entries('nrt', { limit: 1 })).toEqual({
      items: [{ sha256: sha(1), length: 1000, storedAt: ISO }],
      last: sha(1),
    });
    expect(ddb.commandCalls(QueryCommand)[0]?.args[0].input).toEqual({
      TableName: 'ContentIndex',
      KeyConditionExpression: 'cacheNodeId = :n AND sha256 >= :first',
      ExpressionAttributeValues: { ':n': 'nrt', ':first': '0' },
      Limit: 1,
      ConsistentRead: true,
    });
  });

  it('pages on from a digest, up to a digest', async () => {
    ddb.on(QueryCommand).resolves({ Items: [] });
    expect(await index.entries('nrt', { after: sha(5), upTo: sha(9) })).toEqual({ items: [] });
    expect(ddb.commandCalls(QueryCommand)[0]?.args[0].input).toEqual({
      TableName: 'ContentIndex',
      KeyConditionExpression: 'cacheNodeId = :n AND sha256 BETWEEN :first AND :upTo',
      ExpressionAttributeValues: { ':n': 'nrt', ':first': '0', ':upTo': sha(9) },
      ExclusiveStartKey: { cacheNodeId: 'nrt', sha256: sha(5) },
      Limit: 1000,
      ConsistentRead: true,
    });
  });
});

describe('usage', () => {
  it('reads the usage item; a node nothing was recorded at holds nothing', async () => {
    ddb
      .on(GetCommand)
      .resolvesOnce({ Item: { cacheNodeId: 'nrt', sha256: '#usage', bytesHeld: 5000, chunksHeld: 3 } })
      .resolvesOnce({});
    expect(await index.usage('nrt')).toEqual({ bytesHeld: 5000, chunksHeld: 3 });
    expect(await index.usage('sin')).toEqual({ bytesHeld: 0, chunksHeld: 0 });
    expect(ddb.commandCalls(GetCommand)[0]?.args[0].input).toEqual({
      TableName: 'ContentIndex',
      Key: { cacheNodeId: 'nrt', sha256: '#usage' },
      ConsistentRead: true,
    });
  });

  it('reconciles by one atomic ADD of counted minus seen, so changes made while it counted stay', async () => {
    // Seen 6000 before the count; 1000 were added meanwhile (7000 now); the entries counted 4000.
    ddb.on(UpdateCommand).resolves({ Attributes: { bytesHeld: 5000, chunksHeld: 3, reconciledAt: ISO } });
    const usage = await index.reconcileUsage(
      'nrt',
      { bytesHeld: 4000, chunksHeld: 2 },
      { bytesHeld: 6000, chunksHeld: 4 },
    );
    expect(usage).toEqual({ bytesHeld: 5000, chunksHeld: 3, reconciledAt: ISO });
    expect(updates()).toEqual([
      {
        TableName: 'ContentIndex',
        Key: { cacheNodeId: 'nrt', sha256: '#usage' },
        UpdateExpression: 'ADD bytesHeld :b, chunksHeld :c SET reconciledAt = :at',
        ExpressionAttributeValues: { ':b': -2000, ':c': -2, ':at': ISO },
        ReturnValues: 'ALL_NEW',
      },
    ]);
  });
});

describe("the collector's phases", () => {
  const seen: IndexEntry = { sha256: sha(1), length: 1000, storedAt: 'stored', usedAt: 'used' };
  const CONDEMNED = '2026-11-01T00:00:00.000Z';

  it('condemns an entry only if unchanged since read, not marked, and not being deleted', async () => {
    ddb.on(UpdateCommand).resolves({});
    expect(await index.condemn('nrt', seen, ISO)).toBe(true);
    expect(updates()[0]).toEqual({
      TableName: 'ContentIndex',
      Key: { cacheNodeId: 'nrt', sha256: sha(1) },
      UpdateExpression: 'SET condemnedAt = :at',
      ConditionExpression:
        'attribute_exists(sha256) AND storedAt = :stored AND usedAt = :used AND ' +
        'attribute_not_exists(condemnedAt) AND attribute_not_exists(deleting)',
      ExpressionAttributeValues: { ':at': ISO, ':stored': 'stored', ':used': 'used' },
    });
  });

  it('condemns an entry older than usage tracking only while it has no usedAt', async () => {
    ddb.on(UpdateCommand).resolves({});
    const { usedAt: _, ...old } = seen;
    await index.condemn('nrt', old, ISO);
    expect(updates()[0]).toMatchObject({
      ConditionExpression:
        'attribute_exists(sha256) AND storedAt = :stored AND attribute_not_exists(usedAt) AND ' +
        'attribute_not_exists(condemnedAt) AND attribute_not_exists(deleting)',
      ExpressionAttributeValues: { ':at': ISO, ':stored': 'stored' },
    });
  });

  it('pardons only the mark it names', async () => {
    ddb.on(UpdateCommand).resolves({});
    expect(await index.pardon('nrt', sha(1), CONDEMNED)).toBe(true);
    expect(updates()[0]).toMatchObject({
      Key: { cacheNodeId: 'nrt', sha256: sha(1) },
      UpdateExpression: 'REMOVE condemnedAt',
      ConditionExpression: 'attribute_exists(sha256) AND condemnedAt = :c',
      ExpressionAttributeValues: { ':c': CONDEMNED },
    });
  });

  it('begins a deletion only while the entry is still marked from that pass, and not already deleting', async () => {
    ddb.on(UpdateCommand).resolves({});
    expect(await index.beginDelete('nrt', sha(1), CONDEMNED, ISO)).toBe(true);
    expect(updates()[0]).toEqual({
      TableName: 'ContentIndex',
      Key: { cacheNodeId: 'nrt', sha256: sha(1) },
      UpdateExpression: 'SET deleting = :at',
      ConditionExpression: 'attribute_exists(sha256) AND condemnedAt = :c AND attribute_not_exists(deleting)',
      ExpressionAttributeValues: { ':at': ISO, ':c': CONDEMNED },
    });
  });

  it('reverts a deletion: the entry is held again, unmarked', async () => {
    ddb.on(UpdateCommand).resolves({});
    expect(await index.revertDelete('nrt', sha(1))).toBe(true);
    expect(updates()[0]).toEqual({
      TableName: 'ContentIndex',
      Key: { cacheNodeId: 'nrt', sha256: sha(1) },
      UpdateExpression: 'REMOVE deleting, condemnedAt',
      ConditionExpression: 'attribute_exists(sha256) AND attribute_exists(deleting)',
    });
  });

  it('is false, not an error, when the entry changed (a use or record won)', async () => {
    ddb.on(UpdateCommand).rejects(conditionFailed());
    expect(await index.condemn('nrt', seen, ISO)).toBe(false);
    expect(await index.pardon('nrt', sha(1), CONDEMNED)).toBe(false);
    expect(await index.beginDelete('nrt', sha(1), CONDEMNED, ISO)).toBe(false);
    expect(await index.revertDelete('nrt', sha(1))).toBe(false);
  });

  it('throws any other error', async () => {
    ddb.on(UpdateCommand).rejects(Object.assign(new Error('slow down'), { name: 'ThrottlingException' }));
    await expect(index.beginDelete('nrt', sha(1), CONDEMNED, ISO)).rejects.toThrow('slow down');
  });

  it('finishes a deletion only of an entry being deleted, and shrinks the usage by its length', async () => {
    ddb.on(DeleteCommand).resolves({ Attributes: { cacheNodeId: 'nrt', sha256: sha(1), length: 1000 } });
    ddb.on(UpdateCommand).resolves({});
    expect(await index.finishDelete('nrt', sha(1))).toBe(1000);
    expect(deletes()).toEqual([
      {
        TableName: 'ContentIndex',
        Key: { cacheNodeId: 'nrt', sha256: sha(1) },
        ConditionExpression: 'attribute_exists(deleting)',
        ReturnValues: 'ALL_OLD',
      },
    ]);
    expect(updates()).toEqual([usageAdd('nrt', -1000, -1)]);
  });

  it('finishes nothing where the deletion was reverted or the entry removed: no usage change', async () => {
    ddb.on(DeleteCommand).rejects(conditionFailed());
    expect(await index.finishDelete('nrt', sha(1))).toBe(0);
    expect(updates()).toEqual([]);
  });
});
