// DynamoDB table shapes, one source: the CDK stacks create these and the local cloud creates the same.
import { ENV } from '../config.ts';

export interface KeyAttribute {
  readonly name: string;
  readonly type: 'S' | 'N';
}

export interface IndexDefinition {
  readonly name: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
}

export type TableId = 'Registry' | 'ContentMap' | 'LocationMap' | 'Migrations' | 'ContentIndex';

export interface TableDefinition {
  /** Logical id; also the local table name. */
  readonly id: TableId;
  readonly envVar: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  readonly indexes: readonly IndexDefinition[];
  readonly ttlAttribute?: string;
}

const s = (name: string): KeyAttribute => ({ name, type: 'S' });

export const INDEX = {
  contentMapByDataCenter: 'byDataCenter',
  contentMapByVm: 'byVm',
  contentMapByImage: 'byImage',
  contentMapByCacheNode: 'byCacheNode',
  locationMapBySource: 'bySourceDataCenter',
  locationMapByDestination: 'byDestinationDataCenter',
  migrationsByCreated: 'byCreated',
} as const;

export const TABLE_DEFINITIONS: readonly TableDefinition[] = [
  // Node registry: cache nodes (CCN) and data centers (VRN). pk = kind, sk = id; reservations and
  // back-references live on the items as string sets so admission and deletes are single conditional writes.
  { id: 'Registry', envVar: ENV.tableRegistry, partitionKey: s('kind'), sortKey: s('id'), indexes: [] },
  // Draft Table 1, CDN-VRN content mapping: one row per (migration, role, data center).
  {
    id: 'ContentMap',
    envVar: ENV.tableContentMap,
    partitionKey: s('migrationId'),
    sortKey: s('rowKey'),
    indexes: [
      { name: INDEX.contentMapByDataCenter, partitionKey: s('dataCenterId'), sortKey: s('createdAt') },
      { name: INDEX.contentMapByVm, partitionKey: s('vmId'), sortKey: s('createdAt') },
      { name: INDEX.contentMapByImage, partitionKey: s('imageId'), sortKey: s('createdAt') },
      { name: INDEX.contentMapByCacheNode, partitionKey: s('cacheNodeId'), sortKey: s('createdAt') },
    ],
  },
  // Draft Table 2, CDN-VRN location mapping: one row per (migration, destination data center).
  {
    id: 'LocationMap',
    envVar: ENV.tableLocationMap,
    partitionKey: s('migrationId'),
    sortKey: s('destinationDataCenterId'),
    indexes: [
      { name: INDEX.locationMapBySource, partitionKey: s('sourceDataCenterId'), sortKey: s('createdAt') },
      {
        name: INDEX.locationMapByDestination,
        partitionKey: s('destinationDataCenterId'),
        sortKey: s('createdAt'),
      },
    ],
  },
  // Migrations, their history, agent work items and idempotency keys (pk/sk single-table layout).
  {
    id: 'Migrations',
    envVar: ENV.tableMigrations,
    partitionKey: s('pk'),
    sortKey: s('sk'),
    indexes: [{ name: INDEX.migrationsByCreated, partitionKey: s('gsi1pk'), sortKey: s('gsi1sk') }],
    ttlAttribute: 'expiresAt',
  },
  // CMN content index: which cache node holds which verified chunk; also the upload claims (`#upload-claims`) and
  // the copy claims of each destination node (`#copy-claims#<node>`) that concurrent migrations share work by.
  {
    id: 'ContentIndex',
    envVar: ENV.tableContentIndex,
    partitionKey: s('cacheNodeId'),
    sortKey: s('sha256'),
    indexes: [],
    // Only claims carry expiresAt; index entries never expire.
    ttlAttribute: 'expiresAt',
  },
];
