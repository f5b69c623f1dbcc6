// ContentIndex claims: copy claims per (destination cache node, chunk) are one conditional put each under
// `#copy-claims#<node>`, expire with the CopyBatch task that takes them, can be taken over from a named migration,
// are read back 100 keys per call, and are released only by their owner. Upload claims keep their shape.
import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchGetCommand, DeleteCommand, DynamoDBDocumentClient, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  BATCH_GET_LIMIT,
  CLAIM_TTL_SECONDS,
  COPY_CLAIM_TTL_SECONDS,
  ContentIndex,
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
