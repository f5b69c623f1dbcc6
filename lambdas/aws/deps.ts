// The adapters the API and the workflow tasks share, built once per process from the environment (the same
// variables on AWS and in the local cloud).
import type { SFNClient } from '@aws-sdk/client-sfn';
import { ENV, optionalEnv, requireEnv, tableNamesFromEnv } from '../config.ts';
import { type CacheNodeLocator, cacheNodeLocatorFromEnv } from './cache-nodes.ts';
import { type BucketRef, ChunkStorage } from './chunk-storage.ts';
import { dynamo, s3, sfn } from './clients.ts';
import { ContentIndex } from './content-index.ts';
import { MappingStore } from './mapping-store.ts';
import { MigrationStore } from './migration-store.ts';
import { NodeSlots } from './node-slots.ts';
import { PolicyStore } from './policy-store.ts';
import { RegistryStore } from './registry-store.ts';

export interface ServiceDeps {
  readonly registry: RegistryStore;
  readonly mapping: MappingStore;
  readonly migrations: MigrationStore;
  readonly slots: NodeSlots;
  readonly policies: PolicyStore;
  readonly contentIndex: ContentIndex;
  readonly storage: ChunkStorage;
  /** Bucket for manifests and plans (home region). */
  readonly control: BucketRef;
  readonly cacheNodes: CacheNodeLocator;
  readonly sfn: SFNClient;
}

let cached: ServiceDeps | undefined;

export function serviceDeps(env: NodeJS.ProcessEnv = process.env): ServiceDeps {
  if (cached) return cached;
  const tables = tableNamesFromEnv(env);
  const doc = dynamo();
  cached = {
    registry: new RegistryStore(doc, tables.registry),
    mapping: new MappingStore(doc, tables),
    migrations: new MigrationStore(doc, tables.migrations),
    slots: new NodeSlots(doc, tables.registry),
    policies: new PolicyStore(doc, tables.migrations),
    contentIndex: new ContentIndex(doc, tables.contentIndex),
    storage: new ChunkStorage(s3),
    control: {
      bucket: requireEnv(ENV.controlBucket, env),
      region: optionalEnv(ENV.controlBucketRegion, env) ?? requireEnv('AWS_REGION', env),
    },
    cacheNodes: cacheNodeLocatorFromEnv(env),
    sfn: sfn(),
  };
  return cached;
}
