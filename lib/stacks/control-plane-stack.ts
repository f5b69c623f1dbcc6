// The control plane in the home region (draft: CVMM, RMG, CMN): tables, the control bucket, the migration state
// machine and its functions, the cache collector, the IAM-authorized HTTP API, agent and admin roles, status events,
// alarms, dashboard, and the registry seeded from the topology.
import { Arn, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { AgentAccess } from '../constructs/agent-access.ts';
import { dataBucket, logBucket } from '../constructs/buckets.ts';
import { CacheCollector } from '../constructs/cache-collector.ts';
import { MigrationApi } from '../constructs/migration-api.ts';
import { MigrationTables } from '../constructs/migration-tables.ts';
import { MigrationWorkflow } from '../constructs/migration-workflow.ts';
import { Operations } from '../constructs/operations.ts';
import { RegistrySeed } from '../constructs/registry-seed.ts';
import { ScheduledFunctions } from '../constructs/scheduled-functions.ts';
import type { ServiceResources } from '../constructs/service-function.ts';
import { StatusEvents } from '../constructs/status-events.ts';
import type { DeploymentNames } from '../naming.ts';
import type { DeploymentSettings } from '../settings.ts';

export interface ControlPlaneStackProps extends StackProps {
  readonly names: DeploymentNames;
  readonly settings: DeploymentSettings;
  /** From the edge stack. */
  readonly edge: {
    readonly baseUrl: string;
    readonly keyPairId: string;
    readonly privateKey: secretsmanager.Secret;
    readonly distributionId: string;
  };
}

export class ControlPlaneStack extends Stack {
  readonly tables: MigrationTables;
  readonly workflow: MigrationWorkflow;
  readonly collector: CacheCollector;
  readonly api: MigrationApi;
  readonly access: AgentAccess;
  readonly statusEvents: StatusEvents;
  readonly operations: Operations;

  constructor(scope: Construct, id: string, props: ControlPlaneStackProps) {
    super(scope, id, props);
    const { names, settings } = props;
    const retention = settings.logRetentionDays as logs.RetentionDays;

    this.tables = new MigrationTables(this, 'Tables');
    const accessLogs = logBucket(this, 'AccessLogs');
    // Manifests and plans: what state machine payloads refer to by key (DESIGN §9: 256 KiB state limit).
    const controlBucket = dataBucket(this, 'ControlBucket', {
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'control/',
      noncurrentVersionDays: 30,
    });
    const cacheBucketPrefix = names.cacheBucketPrefix(this.account);
    const resources: ServiceResources = {
      tables: this.tables,
      controlBucket,
      controlBucketRegion: this.region,
      cacheBucketPrefix,
      cacheBucketArns: settings.topology.cacheNodes.map((n) => names.cacheBucketArn(this, n.id)),
      cacheBucketArnPrefix: Arn.format(
        { service: 's3', region: '', account: '', resource: cacheBucketPrefix },
        this,
      ),
      edgeBaseUrl: props.edge.baseUrl,
      stateMachineName: names.stateMachineName,
      edgeKeyPairId: props.edge.keyPairId,
      edgePrivateKey: props.edge.privateKey,
      edgeDistributionId: props.edge.distributionId,
      workQueuePrefix: names.workQueuePrefix,
    };

    this.workflow = new MigrationWorkflow(this, 'Workflow', {
      resources,
      logRetention: retention,
      namePrefix: names.prefix,
    });

    const scheduled = new ScheduledFunctions(this, 'Scheduled', { resources, logRetention: retention });

    this.collector = new CacheCollector(this, 'CacheCollector', {
      resources,
      logRetention: retention,
      stateMachineName: names.collectorStateMachineName,
      namePrefix: names.prefix,
    });

    // The API is created before the admin role exists, so its ARN is derived from the fixed name.
    const adminRoleArn = names.roleArn(this, names.adminRoleName);
    this.api = new MigrationApi(this, 'Api', {
      resources,
      adminPrincipalArns: [adminRoleArn, ...settings.adminPrincipalArns],
      agentRolePrefix: names.agentRolePrefix,
      roleName: names.apiRoleName,
      throttle: settings.apiThrottle,
      logRetention: retention,
    });

    this.access = new AgentAccess(this, 'Principals', {
      names,
      api: this.api.httpApi,
      dataCenters: settings.topology.dataCenters,
      trustAnchorArn: settings.rolesAnywhereTrustAnchorArn,
    });

    this.statusEvents = new StatusEvents(this, 'StatusEvents', {
      migrationsTable: this.tables.get('Migrations').table,
      eventBusName: `${names.prefix}-migrations`,
    });

    const seed = new RegistrySeed(this, 'RegistrySeed', {
      registry: this.tables.get('Registry'),
      topology: settings.topology,
      cacheBucketPrefix,
      logRetention: retention,
    });

    this.operations = new Operations(this, 'Operations', {
      dashboardName: names.prefix,
      stateMachine: this.workflow.stateMachine,
      httpApi: this.api.httpApi,
      functions: [
        this.api.handler,
        ...this.workflow.functions.values(),
        ...scheduled.functions.values(),
        ...this.collector.functions.values(),
        seed.function,
      ],
      collectorStateMachine: this.collector.stateMachine,
      tables: this.tables.all().map((t) => t.table),
      statusBus: this.statusEvents.bus,
      distributionId: props.edge.distributionId,
      alarmEmail: settings.alarmEmail,
    });

    new CfnOutput(this, 'ApiUrl', { value: this.api.url });
    new CfnOutput(this, 'AdminRoleArn', { value: this.access.adminRole.roleArn });
    new CfnOutput(this, 'AgentRolePrefix', { value: names.agentRolePrefix });
    if (this.access.profile) {
      new CfnOutput(this, 'RolesAnywhereProfileArn', { value: this.access.profile.attrProfileArn });
    }
    new CfnOutput(this, 'StateMachineArn', { value: this.workflow.stateMachine.stateMachineArn });
    new CfnOutput(this, 'StatusEventBus', { value: this.statusEvents.bus.eventBusName });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.operations.topic.topicArn });
  }
}
