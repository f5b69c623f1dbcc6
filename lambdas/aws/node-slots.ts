// Admission without transactions (DESIGN §4): a cache node's transfer slots are a string set on its registry
// item; taking one is a single conditional ADD, giving it back a DELETE. Both are idempotent. Data centers keep
// the set of migrations using them the same way, so a removal can be refused atomically.
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

export type ReserveOutcome = 'reserved' | 'full' | 'not_active' | 'unknown_node';

const conditionFailed = (err: unknown) => (err as Error).name === 'ConditionalCheckFailedException';

export class NodeSlots {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  /** Takes a slot at a cache node for a migration; holding one already counts as reserved. */
  async reserve(cacheNodeId: string, migrationId: string): Promise<ReserveOutcome> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind: 'cacheNode', id: cacheNodeId },
          UpdateExpression: 'ADD reservations :m',
          ConditionExpression:
            'attribute_exists(id) AND (contains(reservations, :id) OR (#s = :active AND ' +
            '(attribute_not_exists(reservations) OR size(reservations) < #cap)))',
          ExpressionAttributeNames: { '#s': 'status', '#cap': 'capacity' },
          ExpressionAttributeValues: {
            ':m': new Set([migrationId]),
            ':id': migrationId,
            ':active': 'active',
          },
        }),
      );
      return 'reserved';
    } catch (err) {
      if (!conditionFailed(err)) throw err;
      const out = await this.doc.send(
        new GetCommand({
          TableName: this.table,
          Key: { kind: 'cacheNode', id: cacheNodeId },
          ConsistentRead: true,
        }),
      );
      const node = out.Item as { status?: string } | undefined;
      if (!node) return 'unknown_node';
      return node.status === 'active' ? 'full' : 'not_active';
    }
  }

  /** Slots a migration could take at the node now (0 when it is not active or unknown). */
  /**
   * How many migrations queued at a cache node may try again now: its free slots while it is active; all of them
   * when it stopped taking work (draining, down, deleted), so that each goes round it.
   */
  async wakeable(cacheNodeId: string): Promise<number> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.table,
        Key: { kind: 'cacheNode', id: cacheNodeId },
        ConsistentRead: true,
      }),
    );
    const node = out.Item as { status?: string; capacity?: number; reservations?: Set<string> } | undefined;
    if (node?.status !== 'active') return Number.POSITIVE_INFINITY;
    return Math.max(0, (node.capacity ?? 0) - (node.reservations?.size ?? 0));
  }

  async release(cacheNodeId: string, migrationId: string): Promise<void> {
    await this.removeFromSet('cacheNode', cacheNodeId, 'reservations', migrationId);
  }

  /** Marks a data center as used by a migration; false when the data center no longer exists. */
  async addActiveMigration(dataCenterId: string, migrationId: string): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind: 'dataCenter', id: dataCenterId },
          UpdateExpression: 'ADD activeMigrations :m',
          ConditionExpression: 'attribute_exists(id)',
          ExpressionAttributeValues: { ':m': new Set([migrationId]) },
        }),
      );
      return true;
    } catch (err) {
      if (conditionFailed(err)) return false;
      throw err;
    }
  }

  async removeActiveMigration(dataCenterId: string, migrationId: string): Promise<void> {
    await this.removeFromSet('dataCenter', dataCenterId, 'activeMigrations', migrationId);
  }

  private async removeFromSet(kind: string, id: string, attribute: string, member: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind, id },
          UpdateExpression: 'DELETE #a :m',
          // Never create an item by releasing from it.
          ConditionExpression: 'attribute_exists(id)',
          ExpressionAttributeNames: { '#a': attribute },
          ExpressionAttributeValues: { ':m': new Set([member]) },
        }),
      );
    } catch (err) {
      if (!conditionFailed(err)) throw err;
    }
  }
}
