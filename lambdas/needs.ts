// What a Lambda function may touch, declared once per function (lambdas/functions.ts). From the declaration come
// the function's IAM grants (lib/constructs/service-function.ts), its environment (environmentFor below, used by
// CDK and by the local cloud alike), the adapters its code can reach (lambdas/aws/deps.ts: an undeclared one is
// not in the type, so code that uses it does not compile) and the local cloud's wiring.
import type { TableId } from './aws/tables.ts';
import { TABLE_DEFINITIONS } from './aws/tables.ts';
import { ENV } from './config.ts';

export type TableAccess = 'read' | 'readWrite';

/** A function's timeout when its declaration names none. */
export const DEFAULT_FUNCTION_TIMEOUT_SECONDS = 60;

export interface ObjectAccess {
  /** GetObject (also what HeadObject and the source side of CopyObject need). */
  readonly read?: boolean;
  /** PutObject (presigned PUTs and the target side of CopyObject). */
  readonly write?: boolean;
  /** DeleteObject. */
  readonly delete?: boolean;
}

export interface BucketAccess extends ObjectAccess {
  /**
   * ListBucket. Without it S3 answers a HEAD/GET of a missing key with 403 instead of 404 (so "not there (yet)"
   * cannot be told from "forbidden"), and HeadBucket cannot tell a missing bucket.
   */
  readonly list?: boolean;
}

export interface Needs {
  readonly tables?: { readonly [K in TableId]?: TableAccess };
  /** Manifests and plans in the control bucket. */
  readonly control?: BucketAccess;
  /** Chunks (`chunks/*`) in every cache node bucket. */
  readonly chunks?: BucketAccess;
  /** The migration state machine and its executions. */
  readonly executions?: {
    readonly start?: boolean;
    readonly stop?: boolean;
    /** SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat. */
    readonly taskResponse?: boolean;
  };
  /** The CDN: sign chunk URLs (reads the signing key), invalidate a cached chunk. */
  readonly edge?: { readonly sign?: boolean; readonly invalidate?: boolean };
  /** The per-data-center work queues (SQS) agents long-poll: send a wake-up, or create and delete queues. */
  readonly workQueues?: { readonly send?: boolean; readonly manage?: boolean };
}

interface FunctionBase<N extends Needs> {
  /** Unique; the local function name, the suffix of the Lambda's construct id and of its IAM principal. */
  readonly name: string;
  /** Module exporting `handler`, relative to the repository root. */
  readonly entry: string;
  readonly description: string;
  readonly needs: N;
  /** @default 512 */
  readonly memorySize?: number;
  /** @default DEFAULT_FUNCTION_TIMEOUT_SECONDS */
  readonly timeoutSeconds?: number;
}

/** The HTTP API's function. */
export interface ApiFunction<N extends Needs = Needs> extends FunctionBase<N> {
  readonly kind: 'api';
}

/** A Task of a state machine: statemachines/migration.asl.json, or the collector's collect-garbage.asl.json. */
export interface TaskFunction<N extends Needs = Needs> extends FunctionBase<N> {
  readonly kind: 'task';
  /** `${Substitution}` in the ASL file. */
  readonly substitution: string;
}

/** Runs on a schedule (EventBridge Scheduler on AWS, a timer in the local cloud). */
export interface ScheduledFunction<N extends Needs = Needs> extends FunctionBase<N> {
  readonly kind: 'scheduled';
  readonly everyMinutes: number;
}

export type FunctionDefinition<N extends Needs = Needs> =
  | ApiFunction<N>
  | TaskFunction<N>
  | ScheduledFunction<N>;

/** The values behind the variables: CDK passes tokens, the local cloud its own names. */
export interface ResourceValues {
  readonly region: string;
  readonly tableNames: Readonly<Record<TableId, string>>;
  readonly controlBucket: string;
  readonly controlBucketRegion: string;
  readonly cacheBucketPrefix: string;
  readonly edgeBaseUrl: string;
  readonly stateMachineArn: string;
  readonly edgeKeyPairId: string;
  /** The signing key: a Secrets Manager secret on AWS, the PEM itself in the local cloud. */
  readonly edgePrivateKey: { readonly secretArn: string } | { readonly pem: string };
  /** Absent in the local cloud (no CDN cache to invalidate). */
  readonly edgeDistributionId?: string | undefined;
  readonly workQueuePrefix: string;
}

/** The environment a function with these needs runs with: exactly the variables its adapters read. */
export function environmentFor(needs: Needs, values: ResourceValues): Record<string, string> {
  const env: Record<string, string> = {
    // Configuration every function may read (how cache node ids map to bucket names and edge addresses); it
    // grants nothing.
    [ENV.cacheBucketPrefix]: values.cacheBucketPrefix,
    [ENV.edgeBaseUrl]: values.edgeBaseUrl,
  };
  for (const def of TABLE_DEFINITIONS) {
    if (needs.tables?.[def.id]) env[def.envVar] = values.tableNames[def.id];
  }
  if (needs.control) {
    env[ENV.controlBucket] = values.controlBucket;
    env[ENV.controlBucketRegion] = values.controlBucketRegion;
  }
  if (needs.executions) env[ENV.stateMachineArn] = values.stateMachineArn;
  if (needs.edge?.sign) {
    env[ENV.edgeKeyPairId] = values.edgeKeyPairId;
    const key = values.edgePrivateKey;
    if ('pem' in key) env[ENV.edgePrivateKeyPem] = key.pem;
    else env[ENV.edgePrivateKeySecretArn] = key.secretArn;
  }
  if (needs.edge?.invalidate && values.edgeDistributionId)
    env[ENV.edgeDistributionId] = values.edgeDistributionId;
  if (needs.workQueues) env[ENV.workQueuePrefix] = values.workQueuePrefix;
  return env;
}
