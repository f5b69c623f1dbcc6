// EventBridge events on migration status changes, without code in the request path: every status change writes a
// history item (pk MIG#<id>, sk H#<time>#..., with `status`) in the same transaction as the migration
// (lambdas/aws/migration-store.ts). An EventBridge Pipe reads those items from the table's stream and puts one
// "Migration Status Changed" event per item on the deployment's event bus.

import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as pipes from 'aws-cdk-lib/aws-pipes';
import { Construct } from 'constructs';
import { acknowledgeWildcardResource } from '../nag.ts';

export const STATUS_EVENT = { source: 'vmmig', detailType: 'Migration Status Changed' } as const;

export interface StatusEventsProps {
  readonly migrationsTable: dynamodb.Table;
  readonly eventBusName: string;
}

export class StatusEvents extends Construct {
  readonly bus: events.EventBus;
  readonly pipe: pipes.CfnPipe;

  constructor(scope: Construct, id: string, props: StatusEventsProps) {
    super(scope, id);
    const streamArn = props.migrationsTable.tableStreamArn;
    if (!streamArn) throw new Error('the Migrations table has no stream');
    this.bus = new events.EventBus(this, 'Bus', {
      eventBusName: props.eventBusName,
      description: 'vmmig migration status changes',
    });

    const role = new iam.Role(this, 'PipeRole', {
      assumedBy: new iam.ServicePrincipal('pipes.amazonaws.com'),
      description: 'Reads the Migrations stream and puts status events on the bus',
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
        resources: [streamArn],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['dynamodb:ListStreams'], resources: ['*'] }),
    );
    acknowledgeWildcardResource(
      role,
      '*',
      'dynamodb:ListStreams supports no resource-level permissions; record access is limited to this one stream.',
    );
    this.bus.grantPutEventsTo(role);

    const image = (attribute: string) => `<$.dynamodb.NewImage.${attribute}.S>`;
    this.pipe = new pipes.CfnPipe(this, 'Pipe', {
      description: 'Migration history items with a status → Migration Status Changed events',
      roleArn: role.roleArn,
      source: streamArn,
      sourceParameters: {
        dynamoDbStreamParameters: { startingPosition: 'LATEST', batchSize: 10, maximumRetryAttempts: 10 },
        filterCriteria: {
          filters: [
            {
              pattern: JSON.stringify({
                eventName: ['INSERT'],
                dynamodb: { NewImage: { sk: { S: [{ prefix: 'H#' }] }, status: { S: [{ exists: true }] } } },
              }),
            },
          ],
        },
      },
      target: this.bus.eventBusArn,
      targetParameters: {
        eventBridgeEventBusParameters: { source: STATUS_EVENT.source, detailType: STATUS_EVENT.detailType },
        // migrationKey is the item's pk, `MIG#<migration id>`.
        inputTemplate: `{"migrationKey": "${image('pk')}", "status": "${image('status')}", "event": "${image('event')}", "message": "${image('message')}", "at": "${image('at')}"}`,
      },
    });
    this.pipe.node.addDependency(role);
  }
}
