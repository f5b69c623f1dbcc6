// What each Lambda of the control plane may touch, as data: the environment every function needs to build its
// adapters (lambdas/aws/deps.ts reads all of them at start) and the grants for what its code actually calls.
// test/infra/workflow-permissions.test.ts checks this table against the adapter calls in lambdas/workflow/.
import { Duration } from 'aws-cdk-lib';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { ENV } from '../../lambdas/config.ts';
import type { BaseFunction, ObjectAccess, TableAccess } from './base-function.ts';
import type { MigrationTables, TableId } from './migration-tables.ts';

export interface ServiceAccess {
  readonly tables: Partial<Record<TableId, TableAccess>>;
  /** Manifests and plans in the control bucket. */
  readonly control?: ObjectAccess;
  /** Chunks in every cache node bucket. */
  readonly chunks?: ObjectAccess;
  /** HeadBucket on any cache node bucket name, to tell a missing bucket (404) from a forbidden one. */
  readonly headCacheBuckets?: boolean;
  /** STATE_MACHINE_ARN and what the code does with executions (bound by the caller: the machine comes later). */
  readonly executions?: {
    readonly start?: boolean;
    readonly stop?: boolean;
    readonly taskResponse?: boolean;
  };
  readonly memorySize?: number;
  readonly timeout?: Duration;
}

/** Per workflow function (WORKFLOW_FUNCTIONS `name`). */
export const WORKFLOW_ACCESS: Readonly<Record<string, ServiceAccess>> = {
  resolve: {
    tables: {
      Registry: 'readWrite',
      Migrations: 'readWrite',
      ContentMap: 'readWrite',
      LocationMap: 'readWrite',
    },
  },
  admit: { tables: { Registry: 'readWrite', Migrations: 'readWrite' } },
  'await-decision': { tables: { Migrations: 'readWrite' } },
  'request-work': { tables: { Migrations: 'readWrite' } },
  // Manifests of 100k+ chunks: the content index is read in batches of 100 keys.
  'check-cache': {
    tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'readWrite' },
    control: { read: true, write: true },
    memorySize: 1769,
    timeout: Duration.minutes(5),
  },
  'check-shared': {
    tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'read' },
    control: { read: true },
    memorySize: 1024,
    timeout: Duration.minutes(5),
  },
  'plan-replication': {
    tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'read' },
    control: { read: true, write: true },
    memorySize: 1769,
    timeout: Duration.minutes(5),
  },
  // The ASL gives a copy batch 900 s; the function must not outlive its task.
  'copy-batch': {
    tables: { Registry: 'read', Migrations: 'readWrite', ContentIndex: 'readWrite' },
    control: { read: true },
    chunks: { read: true, write: true },
    memorySize: 1024,
    timeout: Duration.seconds(890),
  },
  'start-downloads': { tables: { Migrations: 'readWrite' } },
  complete: { tables: { Registry: 'readWrite', Migrations: 'readWrite' } },
  'record-failure': { tables: { Registry: 'readWrite', Migrations: 'readWrite' } },
};

/** Functions that run on a schedule, not in the state machine. */
export interface ScheduledFunction {
  readonly name: string;
  /** Module under lambdas/workflow/ exporting `handler`. */
  readonly module: string;
  readonly description: string;
  /** Minutes between runs. */
  readonly everyMinutes: number;
  readonly access: ServiceAccess;
}

export const SCHEDULED_FUNCTIONS: readonly ScheduledFunction[] = [
  {
    name: 'run-policies',
    module: 'run-policies.ts',
    description: 'Backup policies: start the backups that are due',
    // The local cloud ticks every 15 s; EventBridge Scheduler's finest rate is one minute.
    everyMinutes: 1,
    access: {
      // Registry write: a started backup holds its data centers (activeMigrations) from creation.
      tables: { Registry: 'readWrite', Migrations: 'readWrite' },
      executions: { start: true },
      timeout: Duration.minutes(5),
    },
  },
];

/** The API serves every route, so it reads and writes everything it is given. */
export const API_ACCESS: ServiceAccess = {
  tables: {
    Registry: 'readWrite',
    ContentMap: 'readWrite',
    LocationMap: 'readWrite',
    Migrations: 'readWrite',
    ContentIndex: 'readWrite',
  },
  control: { read: true, write: true },
  // Delete: the repair route removes a corrupted chunk before copying an intact one over it.
  chunks: { read: true, write: true, delete: true },
  headCacheBuckets: true,
  executions: { start: true, stop: true, taskResponse: true },
};

export interface ServiceResources {
  readonly tables: MigrationTables;
  readonly controlBucket: s3.Bucket;
  readonly controlBucketRegion: string;
  readonly cacheBucketPrefix: string;
  readonly cacheBucketArns: readonly string[];
  /** `arn:<partition>:s3:::<CACHE_BUCKET_PREFIX>`. */
  readonly cacheBucketArnPrefix: string;
  readonly edgeBaseUrl: string;
}

/** Sets the shared service environment on `fn` and grants what `access` lists, nothing more. */
export function bindService(fn: BaseFunction, resources: ServiceResources, access: ServiceAccess): void {
  for (const bound of resources.tables.all()) {
    fn.bindTable(bound, access.tables[bound.definition.id] ?? 'environment only');
  }
  fn.bindBucket(ENV.controlBucket, resources.controlBucket, access.control ?? {});
  fn.setEnvironment(ENV.controlBucketRegion, resources.controlBucketRegion);
  fn.setEnvironment(ENV.cacheBucketPrefix, resources.cacheBucketPrefix);
  if (access.chunks) fn.grantChunks(resources.cacheBucketArns, access.chunks);
  if (access.headCacheBuckets) {
    fn.grantHeadBucket(
      `${resources.cacheBucketArnPrefix}*`,
      'Registering a cache node checks that its bucket exists (HeadBucket); naming the prefix lets S3 answer 404 ' +
        'for a node not deployed yet instead of 403. ListBucket only, on bucket names of this deployment.',
    );
  }
  fn.setEnvironment(ENV.edgeBaseUrl, resources.edgeBaseUrl);
}
