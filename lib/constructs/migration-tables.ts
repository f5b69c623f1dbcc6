// The DynamoDB tables of lambdas/aws/tables.ts (keys, indexes, TTL come from there, never restated here):
// on-demand, point-in-time recovery, encrypted, retained when the stack is deleted.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { TABLE_DEFINITIONS, type TableDefinition } from '../../lambdas/aws/tables.ts';
import type { BoundTable } from './base-function.ts';

export type TableId = TableDefinition['id'];

const key = (k: { readonly name: string; readonly type: 'S' | 'N' }): dynamodb.Attribute => ({
  name: k.name,
  type: k.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER,
});

export class MigrationTables extends Construct {
  private readonly byId = new Map<TableId, BoundTable>();

  constructor(scope: Construct, id: string) {
    super(scope, id);
    for (const definition of TABLE_DEFINITIONS) {
      const table = new dynamodb.Table(this, definition.id, {
        partitionKey: key(definition.partitionKey),
        ...(definition.sortKey ? { sortKey: key(definition.sortKey) } : {}),
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        encryption: dynamodb.TableEncryption.AWS_MANAGED,
        ...(definition.ttlAttribute ? { timeToLiveAttribute: definition.ttlAttribute } : {}),
        // Status events are read from the history items of the Migrations table (lib/constructs/status-events.ts).
        ...(definition.id === 'Migrations' ? { stream: dynamodb.StreamViewType.NEW_IMAGE } : {}),
        removalPolicy: RemovalPolicy.RETAIN,
      });
      for (const index of definition.indexes) {
        table.addGlobalSecondaryIndex({
          indexName: index.name,
          partitionKey: key(index.partitionKey),
          ...(index.sortKey ? { sortKey: key(index.sortKey) } : {}),
          projectionType: dynamodb.ProjectionType.ALL,
        });
      }
      this.byId.set(definition.id, { table, definition });
    }
  }

  get(id: TableId): BoundTable {
    const bound = this.byId.get(id);
    if (!bound) throw new Error(`no table ${id} in lambdas/aws/tables.ts`);
    return bound;
  }

  all(): BoundTable[] {
    return [...this.byId.values()];
  }
}
