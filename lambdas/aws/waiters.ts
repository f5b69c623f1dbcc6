// Workflow steps waiting for an event, by topic (table Migrations, pk `WAIT#<topic>`): a migration queued for a
// slot at a cache node (`slot#<node>`) or for space there (`space#<node>`), a migration awaiting chunks another migration uploads (`upload#<id>`). Each
// waiter holds its callback task token; whoever makes the event happen answers the oldest waiters' tokens. Waiting
// costs no state transitions, whatever its length (the history quota), and an idle wait costs nothing.
import { DeleteCommand, type DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';

export interface Waiter {
  readonly topic: string;
  /** Orders waiters: the oldest first (e.g. `<queuedSince>#<migrationId>`). */
  readonly order: string;
  readonly migrationId: string;
  readonly taskToken: string;
}

export const slotTopic = (cacheNodeId: string) => `slot#${cacheNodeId}`;
/** Migrations queued because a cache node lacks the space they need (woken when room is made, not by slots). */
export const spaceTopic = (cacheNodeId: string) => `space#${cacheNodeId}`;
export const uploadTopic = (migrationId: string) => `upload#${migrationId}`;
/** Slot waiters queue in order of arrival. */
export const slotWaitOrder = (queuedSince: string, migrationId: string) => `${queuedSince}#${migrationId}`;

const pk = (topic: string) => `WAIT#${topic}`;
/** A waiter nobody answered is gone after this (its task has long timed out). */
const TTL_SECONDS = 8 * 24 * 3600;

export class Waiters {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async add(waiter: Waiter): Promise<void> {
    await this.doc.send(
      new PutCommand({
        TableName: this.table,
        Item: {
          pk: pk(waiter.topic),
          sk: waiter.order,
          ...waiter,
          expiresAt: Math.floor(Date.now() / 1000) + TTL_SECONDS,
        },
      }),
    );
  }

  /** The oldest waiters of a topic, at most `limit`. */
  async oldest(topic: string, limit: number): Promise<Waiter[]> {
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': pk(topic) },
        Limit: limit,
        ConsistentRead: true,
      }),
    );
    return (out.Items ?? []).map((i) => ({
      topic: String(i['topic']),
      order: String(i['order']),
      migrationId: String(i['migrationId']),
      taskToken: String(i['taskToken']),
    }));
  }

  /** Removes a waiter whatever its token (its migration no longer waits). */
  async forget(topic: string, order: string): Promise<void> {
    await this.doc.send(new DeleteCommand({ TableName: this.table, Key: { pk: pk(topic), sk: order } }));
  }

  /** Removes a waiter if it still holds this token (a newer wait of the same migration is kept). */
  async remove(waiter: Waiter): Promise<void> {
    try {
      await this.doc.send(
        new DeleteCommand({
          TableName: this.table,
          Key: { pk: pk(waiter.topic), sk: waiter.order },
          ConditionExpression: 'attribute_not_exists(pk) OR taskToken = :t',
          ExpressionAttributeValues: { ':t': waiter.taskToken },
        }),
      );
    } catch (err) {
      if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
    }
  }
}
