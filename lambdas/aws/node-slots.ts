// Admission without transactions (DESIGN §4): a cache node's transfer slots are a string set on its registry
// item; taking one is a single conditional ADD, giving it back a DELETE. Both are idempotent. Its cache space is a
// map of reservations (bytes by migration) beside its budget, changed under a version number. Data centers keep
// the set of migrations using them the same way, so a removal can be refused atomically.
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';

export type ReserveOutcome = 'reserved' | 'full' | 'not_active' | 'unknown_node';

/** What admission reads of a node's space (its usage comes from the content index). */
export interface CacheNodeSpaceItem {
  readonly id: string;
  readonly budgetBytes?: number;
  readonly spaceReservations: Readonly<Record<string, number>>;
  readonly spaceVersion: number;
}

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

  // ---- cache space (draft §2: the RMG applies for "cache space" as well as a data channel)

  /**
   * Reserves `bytes` of a node's budget for a migration, if `fits` says the node (as read, with its version) has
   * room: optimistic concurrency on `spaceVersion`, so two admissions never both take the last free bytes. Holding a
   * reservation already (a re-run) replaces its amount. Returns the node as read when it did not fit.
   */
  async reserveSpace(
    cacheNodeId: string,
    migrationId: string,
    bytes: number,
    fits: (node: CacheNodeSpaceItem) => boolean,
  ): Promise<{ reserved: boolean; node: CacheNodeSpaceItem }> {
    await this.ensureSpaceMaps(cacheNodeId);
    for (let attempt = 0; ; attempt++) {
      const node = await this.spaceItem(cacheNodeId);
      if (!fits(node)) return { reserved: false, node };
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.table,
            Key: { kind: 'cacheNode', id: cacheNodeId },
            UpdateExpression: 'SET spaceReservations.#m = :b, spaceVersion = :next REMOVE spaceWanted.#m',
            ConditionExpression:
              'attribute_exists(id) AND ' +
              (node.spaceVersion === 0 ? 'attribute_not_exists(spaceVersion)' : 'spaceVersion = :v'),
            ExpressionAttributeNames: { '#m': migrationId },
            ExpressionAttributeValues: {
              ':b': bytes,
              ':next': node.spaceVersion + 1,
              ...(node.spaceVersion === 0 ? {} : { ':v': node.spaceVersion }),
            },
          }),
        );
        return { reserved: true, node };
      } catch (err) {
        if (!conditionFailed(err) || attempt >= 20) throw err;
      }
    }
  }

  /** Gives a migration's space reservation back (and forgets what it wanted); idempotent. */
  async releaseSpace(cacheNodeId: string, migrationId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind: 'cacheNode', id: cacheNodeId },
          UpdateExpression: 'REMOVE spaceReservations.#m, spaceWanted.#m ADD spaceVersion :one',
          ConditionExpression: 'attribute_exists(spaceReservations) AND attribute_exists(spaceWanted)',
          ExpressionAttributeNames: { '#m': migrationId },
          ExpressionAttributeValues: { ':one': 1 },
        }),
      );
    } catch (err) {
      if (!conditionFailed(err)) throw err;
    }
  }

  /** A queued migration needs `bytes` of room beyond what the node holds: the collector makes that much. */
  async wantSpace(cacheNodeId: string, migrationId: string, bytes: number): Promise<void> {
    await this.ensureSpaceMaps(cacheNodeId);
    await this.doc.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { kind: 'cacheNode', id: cacheNodeId },
        UpdateExpression: 'SET spaceWanted.#m = :b',
        ConditionExpression: 'attribute_exists(id)',
        ExpressionAttributeNames: { '#m': migrationId },
        ExpressionAttributeValues: { ':b': bytes },
      }),
    );
  }

  async spaceItem(cacheNodeId: string): Promise<CacheNodeSpaceItem> {
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.table,
        Key: { kind: 'cacheNode', id: cacheNodeId },
        ConsistentRead: true,
      }),
    );
    const item = out.Item as
      | {
          budgetBytes?: number;
          spaceReservations?: Record<string, number>;
          spaceVersion?: number;
        }
      | undefined;
    return {
      id: cacheNodeId,
      ...(item?.budgetBytes !== undefined ? { budgetBytes: Number(item.budgetBytes) } : {}),
      spaceReservations: Object.fromEntries(
        Object.entries(item?.spaceReservations ?? {}).map(([k, v]) => [k, Number(v)]),
      ),
      spaceVersion: Number(item?.spaceVersion ?? 0),
    };
  }

  /** Nested SETs need their maps to exist. */
  private async ensureSpaceMaps(cacheNodeId: string): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { kind: 'cacheNode', id: cacheNodeId },
          UpdateExpression:
            'SET spaceReservations = if_not_exists(spaceReservations, :empty), ' +
            'spaceWanted = if_not_exists(spaceWanted, :empty)',
          ConditionExpression: 'attribute_exists(id)',
          ExpressionAttributeValues: { ':empty': {} },
        }),
      );
    } catch (err) {
      if (!conditionFailed(err)) throw err;
    }
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
