// The adapters of one function, built from its declared needs (lambdas/needs.ts) and its runtime: only what it
// declared exists, in the value and in the type, so code that reaches for an undeclared adapter does not compile.
import type { SFNClient } from '@aws-sdk/client-sfn';
import { ENV, optionalEnv, requireEnv } from '../config.ts';
import type { Needs, TableAccess } from '../needs.ts';
import { type CacheNodeLocator, cacheNodeLocator } from './cache-nodes.ts';
import { type BucketRef, ChunkStorage } from './chunk-storage.ts';
import { AwsClients, type ClientConfig } from './clients.ts';
import { ContentIndex } from './content-index.ts';
import { type EdgeCache, edgeCache } from './edge-cache.ts';
import { EdgeSigner } from './edge-signer.ts';
import { MappingStore } from './mapping-store.ts';
import { MigrationStore } from './migration-store.ts';
import { NodeSlots } from './node-slots.ts';
import { PolicyStore } from './policy-store.ts';
import { RegistryStore } from './registry-store.ts';
import { ScheduledStarts } from './scheduled-starts.ts';
import { TABLE_DEFINITIONS, type TableId } from './tables.ts';
import { Waiters } from './waiters.ts';
import { WorkQueues } from './work-queues.ts';

/** Where a function runs: its environment (the variables environmentFor sets) and how its SDK clients connect. */
export interface Runtime {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly clients: ClientConfig;
}

/** A Lambda function's runtime: everything from its environment, the SDK's defaults for the clients. */
export const lambdaRuntime = (): Runtime => ({ env: process.env, clients: {} });

/** Every adapter any function can have; a function's deps are the part its needs select (DepsOf). */
export interface AllDeps {
  readonly registry: RegistryStore;
  readonly slots: NodeSlots;
  readonly migrations: MigrationStore;
  readonly policies: PolicyStore;
  readonly waiters: Waiters;
  readonly scheduledStarts: ScheduledStarts;
  readonly mapping: MappingStore;
  readonly contentIndex: ContentIndex;
  readonly storage: ChunkStorage;
  /** Bucket for manifests and plans (home region). */
  readonly control: BucketRef;
  readonly cacheNodes: CacheNodeLocator;
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  readonly edgeSigner: EdgeSigner;
  readonly edgeCache: EdgeCache;
  readonly workQueues: WorkQueues;
}

/** What a helper needs, by adapter name: `deps: Uses<'migrations' | 'slots'>`. */
export type Uses<K extends keyof AllDeps> = Pick<AllDeps, K>;

type Declared<T, K extends PropertyKey> = T extends { readonly [P in K]: unknown } ? true : false;
type When<C extends boolean, K extends keyof AllDeps> = C extends true ? Uses<K> : unknown;
type TablesOf<N extends Needs> = NonNullable<N['tables']>;
type HasTable<N extends Needs, T extends TableId> =
  TablesOf<N> extends { readonly [P in T]: TableAccess } ? true : false;
type And<A extends boolean, B extends boolean> = A extends true ? B : false;
type Or<A extends boolean, B extends boolean> = A extends true ? true : B;

/** The adapters a function with needs N may use. */
export type DepsOf<N extends Needs> = Uses<'cacheNodes'> &
  When<HasTable<N, 'Registry'>, 'registry' | 'slots'> &
  When<HasTable<N, 'Migrations'>, 'migrations' | 'policies' | 'waiters' | 'scheduledStarts'> &
  When<And<HasTable<N, 'ContentMap'>, HasTable<N, 'LocationMap'>>, 'mapping'> &
  When<HasTable<N, 'ContentIndex'>, 'contentIndex'> &
  When<Or<Declared<N, 'control'>, Declared<N, 'chunks'>>, 'storage'> &
  When<Declared<N, 'control'>, 'control'> &
  When<Declared<N, 'executions'>, 'sfn' | 'stateMachineArn'> &
  When<Declared<NonNullable<N['edge']>, 'sign'>, 'edgeSigner'> &
  When<Declared<NonNullable<N['edge']>, 'invalidate'>, 'edgeCache'> &
  When<Declared<N, 'workQueues'>, 'workQueues'>;

const tableName = (id: TableId, env: Runtime['env']) => {
  const def = TABLE_DEFINITIONS.find((d) => d.id === id);
  if (!def) throw new Error(`no table ${id}`);
  return requireEnv(def.envVar, env);
};

/** Builds the adapters `needs` declares, reading the variables environmentFor sets. */
export function buildDeps<N extends Needs>(needs: N, runtime: Runtime): DepsOf<N> {
  const { env } = runtime;
  const clients = new AwsClients({
    ...runtime.clients,
    ...(runtime.clients.region ? {} : { region: optionalEnv('AWS_REGION', env) }),
    ...(runtime.clients.s3ForcePathStyle === undefined
      ? { s3ForcePathStyle: optionalEnv(ENV.s3ForcePathStyle, env) === 'true' }
      : {}),
  } as ClientConfig);
  const tables = needs.tables ?? {};
  const deps: Partial<Record<keyof AllDeps, unknown>> = {
    cacheNodes: cacheNodeLocator(env, (region) => clients.s3(region)),
  };
  if (tables.Registry) {
    const name = tableName('Registry', env);
    deps.registry = new RegistryStore(clients.dynamo(), name);
    deps.slots = new NodeSlots(clients.dynamo(), name);
  }
  if (tables.Migrations) {
    const name = tableName('Migrations', env);
    deps.migrations = new MigrationStore(clients.dynamo(), name);
    deps.policies = new PolicyStore(clients.dynamo(), name);
    deps.waiters = new Waiters(clients.dynamo(), name);
    deps.scheduledStarts = new ScheduledStarts(clients.dynamo(), name);
  }
  if (tables.ContentMap && tables.LocationMap) {
    deps.mapping = new MappingStore(clients.dynamo(), {
      contentMap: tableName('ContentMap', env),
      locationMap: tableName('LocationMap', env),
    });
  }
  if (tables.ContentIndex)
    deps.contentIndex = new ContentIndex(clients.dynamo(), tableName('ContentIndex', env));
  if (needs.control || needs.chunks) deps.storage = new ChunkStorage((region) => clients.s3(region));
  if (needs.control) {
    deps.control = {
      bucket: requireEnv(ENV.controlBucket, env),
      region: optionalEnv(ENV.controlBucketRegion, env) ?? requireEnv('AWS_REGION', env),
    };
  }
  if (needs.executions) {
    deps.sfn = clients.sfn();
    deps.stateMachineArn = requireEnv(ENV.stateMachineArn, env);
  }
  if (needs.edge?.sign) {
    deps.edgeSigner = new EdgeSigner(
      requireEnv(ENV.edgeBaseUrl, env),
      requireEnv(ENV.edgeKeyPairId, env),
      () => loadEdgePrivateKey(env, clients),
    );
  }
  if (needs.edge?.invalidate) deps.edgeCache = edgeCache(optionalEnv(ENV.edgeDistributionId, env), clients);
  if (needs.workQueues) {
    deps.workQueues = new WorkQueues(
      clients.sqs(),
      requireEnv(ENV.workQueuePrefix, env),
      clients.config.region ?? requireEnv('AWS_REGION', env),
    );
  }
  return deps as DepsOf<N>;
}

async function loadEdgePrivateKey(env: Runtime['env'], clients: AwsClients): Promise<string> {
  const pem = optionalEnv(ENV.edgePrivateKeyPem, env);
  if (pem) return pem;
  const secretArn = requireEnv(ENV.edgePrivateKeySecretArn, env);
  const { GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
  const out = await clients.secrets().send(new GetSecretValueCommand({ SecretId: secretArn }));
  if (!out.SecretString) throw new Error(`secret ${secretArn} holds no string`);
  return out.SecretString;
}
