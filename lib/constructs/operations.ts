// Operations: alarms on failed executions, API 5xx and throttling (Lambda, DynamoDB, Step Functions), cache nodes
// over their budget and failed collector passes, a topic they and failed-migration events notify, and one dashboard
// for the whole deployment.
import { Duration } from 'aws-cdk-lib';
import type * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { COLLECTOR_SCHEDULE } from '../../lambdas/functions.ts';
import {
  CACHE_METRICS_NAMESPACE,
  CACHE_NODE_DIMENSION,
  NODES_OVER_BUDGET,
} from '../../lambdas/workflow/cache-metrics.ts';
import type { BaseFunction } from './base-function.ts';
import { STATUS_EVENT } from './status-events.ts';

export interface OperationsProps {
  readonly dashboardName: string;
  readonly stateMachine: sfn.StateMachine;
  /** The cache collector's (lib/constructs/cache-collector.ts). */
  readonly collectorStateMachine: sfn.StateMachine;
  readonly httpApi: apigw.HttpApi;
  readonly functions: readonly BaseFunction[];
  readonly tables: readonly dynamodb.Table[];
  readonly statusBus: events.EventBus;
  /** CloudFront metrics live in us-east-1 with dimension Region=Global. */
  readonly distributionId: string;
  readonly alarmEmail?: string | undefined;
}

const FIVE_MINUTES = Duration.minutes(5);
/** One collector pass per period: every node's data points of a pass carry the pass's scheduled time. */
const COLLECTOR_PERIOD = Duration.minutes(COLLECTOR_SCHEDULE.everyMinutes);

/** A cache-space metric of every node there is (SEARCH: nodes registered at run time too). */
const perCacheNode = (metricName: string, statistic: string) =>
  new cloudwatch.MathExpression({
    expression: `SEARCH('{${CACHE_METRICS_NAMESPACE},${CACHE_NODE_DIMENSION}} MetricName="${metricName}"', '${statistic}', ${COLLECTOR_PERIOD.toSeconds()})`,
    usingMetrics: {},
    period: COLLECTOR_PERIOD,
  });

/** A sum of many metrics as one (CloudWatch math allows up to 500). */
function sumOf(
  label: string,
  idPrefix: string,
  metrics: readonly cloudwatch.IMetric[],
): cloudwatch.MathExpression {
  // Ids must be unique among all metrics of a graph that shows several sums.
  const usingMetrics = Object.fromEntries(metrics.map((m, i) => [`${idPrefix}${i}`, m]));
  return new cloudwatch.MathExpression({
    label,
    expression: metrics.length === 0 ? '0' : Object.keys(usingMetrics).join(' + '),
    usingMetrics,
    period: FIVE_MINUTES,
  });
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class Operations extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: readonly cloudwatch.Alarm[];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: OperationsProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Alarms', {
      displayName: 'vmmig alarms and failed migrations',
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));

    const sm = props.stateMachine;
    const failedExecutions = sumOf('Failed or timed-out migrations', 'sfn', [
      sm.metricFailed({ period: FIVE_MINUTES, statistic: 'Sum' }),
      sm.metricTimedOut({ period: FIVE_MINUTES, statistic: 'Sum' }),
    ]);
    const api5xx = props.httpApi.metricServerError({ period: FIVE_MINUTES, statistic: 'Sum' });
    // An alarm takes at most 10 metrics: one throttling alarm per 10 functions.
    const throttleGroups = chunk(props.functions, 10).map((group, i) =>
      sumOf(
        `Lambda throttles (${group.length} functions)`,
        `fn${i}_`,
        group.map((f) => f.function.metricThrottles({ period: FIVE_MINUTES, statistic: 'Sum' })),
      ),
    );
    const dynamoThrottles = sumOf(
      'DynamoDB throttle events',
      'ddb',
      props.tables.flatMap((t) =>
        ['ReadThrottleEvents', 'WriteThrottleEvents'].map((name) =>
          t.metric(name, { period: FIVE_MINUTES, statistic: 'Sum' }),
        ),
      ),
    );
    const sfnThrottles = sm.metric('ExecutionThrottled', { period: FIVE_MINUTES, statistic: 'Sum' });
    const collector = props.collectorStateMachine;
    const failedCollections = sumOf('Failed or timed-out collector passes', 'gc', [
      collector.metricFailed({ period: FIVE_MINUTES, statistic: 'Sum' }),
      collector.metricTimedOut({ period: FIVE_MINUTES, statistic: 'Sum' }),
    ]);
    // lambdas/workflow/cache-metrics.ts: each node's pass adds 1 when the node holds more than its budget after it.
    const nodesOverBudget = new cloudwatch.Metric({
      namespace: CACHE_METRICS_NAMESPACE,
      metricName: NODES_OVER_BUDGET,
      period: COLLECTOR_PERIOD,
      statistic: 'Sum',
    });

    const alarm = (alarmId: string, description: string, metric: cloudwatch.IMetric) =>
      new cloudwatch.Alarm(this, alarmId, {
        alarmDescription: description,
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    this.alarms = [
      alarm(
        'FailedMigrations',
        'A migration execution failed or timed out (see the migration history).',
        failedExecutions,
      ),
      alarm('Api5xx', 'The migration API answered 5xx (see the API function logs).', api5xx),
      ...throttleGroups.map((metric, i) =>
        alarm(
          i === 0 ? 'LambdaThrottles' : `LambdaThrottles${i + 1}`,
          'A control plane function was throttled (account concurrency).',
          metric,
        ),
      ),
      alarm('DynamoDbThrottles', 'A table throttled reads or writes (hot partition?).', dynamoThrottles),
      alarm('StepFunctionsThrottles', 'Step Functions throttled a state transition or start.', sfnThrottles),
      alarm(
        'CacheCollectorFailed',
        'A cache collector pass failed at a cache node or timed out (see its execution of the collect-garbage ' +
          'state machine); the other nodes were collected.',
        failedCollections,
      ),
      new cloudwatch.Alarm(this, 'CacheNodesOverBudget', {
        alarmDescription:
          `A cache node held more than its storage budget after 3 collector passes in a row ` +
          `(${3 * COLLECTOR_SCHEDULE.everyMinutes} minutes): what it holds is kept by live migrations, pins or ` +
          "backup policies' kept runs. `vmmig cache gc --dry-run` shows it; raise the budget or release what keeps it.",
        metric: nodesOverBudget,
        threshold: 1,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        // No pass, no data: the failed-pass alarm says so; this one speaks of budgets only.
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    ];
    for (const a of this.alarms) a.addAlarmAction(new actions.SnsAction(this.topic));

    new events.Rule(this, 'FailedMigrationEvents', {
      description: 'Notify on migrations that end FAILED',
      eventBus: props.statusBus as events.IEventBus, // see lib/constructs/buckets.ts on the cast
      eventPattern: {
        source: [STATUS_EVENT.source],
        detailType: [STATUS_EVENT.detailType],
        detail: { status: ['FAILED'] },
      },
      targets: [new targets.SnsTopic(this.topic)],
    });

    const cloudFront = (metricName: string, statistic: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/CloudFront',
        metricName,
        dimensionsMap: { DistributionId: props.distributionId, Region: 'Global' },
        region: 'us-east-1',
        period: FIVE_MINUTES,
        statistic,
      });
    const perFunction = (metric: (f: BaseFunction) => cloudwatch.IMetric) => props.functions.map(metric);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName,
      defaultInterval: Duration.hours(6),
      widgets: [
        [
          new cloudwatch.AlarmStatusWidget({
            title: 'Alarms',
            alarms: [...this.alarms],
            width: 24,
            height: 3,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Migrations (executions)',
            left: [
              sm.metricStarted({ period: FIVE_MINUTES }),
              sm.metricSucceeded({ period: FIVE_MINUTES }),
              sm.metricFailed({ period: FIVE_MINUTES }),
              sm.metricTimedOut({ period: FIVE_MINUTES }),
              sm.metricAborted({ period: FIVE_MINUTES }),
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'API requests and errors',
            left: [
              props.httpApi.metricCount({ period: FIVE_MINUTES }),
              props.httpApi.metricClientError({ period: FIVE_MINUTES }),
              props.httpApi.metricServerError({ period: FIVE_MINUTES }),
            ],
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'API latency (p50, p99)',
            left: [
              props.httpApi.metricLatency({ period: FIVE_MINUTES, statistic: 'p50' }),
              props.httpApi.metricLatency({ period: FIVE_MINUTES, statistic: 'p99' }),
            ],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Function errors',
            left: perFunction((f) => f.function.metricErrors({ period: FIVE_MINUTES })),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Function duration (p99)',
            left: perFunction((f) => f.function.metricDuration({ period: FIVE_MINUTES, statistic: 'p99' })),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Throttling',
            left: [...throttleGroups, dynamoThrottles, sfnThrottles],
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Cache space per node: held and budget (bytes)',
            left: [perCacheNode('BytesHeld', 'Maximum'), perCacheNode('BudgetBytes', 'Maximum')],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Cache collector: marked and freed per node (bytes), nodes over budget',
            left: [perCacheNode('BytesMarked', 'Sum'), perCacheNode('BytesFreed', 'Sum')],
            right: [nodesOverBudget.with({ label: 'Cache nodes over budget after a pass' })],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Edge (CloudFront) downloads',
            left: [cloudFront('Requests', 'Sum')],
            right: [cloudFront('BytesDownloaded', 'Sum')],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Edge error rates (%)',
            left: [cloudFront('4xxErrorRate', 'Average'), cloudFront('5xxErrorRate', 'Average')],
            width: 12,
          }),
        ],
      ],
    });
  }
}
