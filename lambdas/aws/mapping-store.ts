// DynamoDB adapter for the draft's mapping tables: ContentMap (Table 1) and LocationMap (Table 2).
// Rows are written once per migration (idempotently) and read through the most selective index.
import {
  BatchWriteCommand,
  DeleteCommand,
  type DynamoDBDocumentClient,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { ContentMapRow, LocationMapRow } from '../../protocol/api/mapping.ts';
import { type CursorShape, decodeCursor, encodeCursor, type Page } from './pagination.ts';
import { INDEX, TABLE_DEFINITIONS, type TableDefinition } from './tables.ts';

type Filters = Record<string, string | undefined>;

interface Access {
  readonly table: TableDefinition;
  /** Partition attribute → index name (undefined = the table itself), in order of preference. */
  readonly keys: readonly (readonly [attribute: string, index: string | undefined])[];
}

const tableDefinition = (id: TableDefinition['id']): TableDefinition => {
  const def = TABLE_DEFINITIONS.find((t) => t.id === id);
  if (!def) throw new Error(`no table definition ${id}`);
  return def;
};

/** A page of a Query or Scan ends at a key of the table (plus the index's key when one is queried). */
function cursorShape(
  access: Access,
  key: Access['keys'][number] | undefined,
  value: string | undefined,
): CursorShape {
  const { table } = access;
  const index = key?.[1] === undefined ? undefined : table.indexes.find((i) => i.name === key[1]);
  const attributes = new Set(
    [table.partitionKey, table.sortKey, index?.partitionKey, index?.sortKey].flatMap((k) =>
      k ? [k.name] : [],
    ),
  );
  return {
    attributes: [...attributes],
    ...(key && value !== undefined ? { fixed: { [key[0]]: value } } : {}),
  };
}

const CONTENT_MAP_ACCESS: Access = {
  table: tableDefinition('ContentMap'),
  keys: [
    ['migrationId', undefined],
    ['dataCenterId', INDEX.contentMapByDataCenter],
    ['vmId', INDEX.contentMapByVm],
    ['imageId', INDEX.contentMapByImage],
    ['cacheNodeId', INDEX.contentMapByCacheNode],
  ],
};

const LOCATION_MAP_ACCESS: Access = {
  table: tableDefinition('LocationMap'),
  keys: [
    ['migrationId', undefined],
    ['sourceDataCenterId', INDEX.locationMapBySource],
    ['destinationDataCenterId', INDEX.locationMapByDestination],
  ],
};

export class MappingStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tables: { readonly contentMap: string; readonly locationMap: string },
  ) {}

  /** Writes the rows of one migration; a second call rewrites the same keys with the same values. */
  async putRows(
    contentRows: readonly ContentMapRow[],
    locationRows: readonly LocationMapRow[],
  ): Promise<void> {
    const requests = [
      ...contentRows.map((row) => ({
        table: this.tables.contentMap,
        item: { ...row, rowKey: `${row.status}#${row.dataCenterId}` },
      })),
      ...locationRows.map((row) => ({ table: this.tables.locationMap, item: { ...row } })),
    ];
    for (let i = 0; i < requests.length; i += 25) {
      let pending: Record<string, { PutRequest: { Item: Record<string, unknown> } }[]> = {};
      for (const r of requests.slice(i, i + 25)) {
        const list = pending[r.table] ?? [];
        list.push({ PutRequest: { Item: r.item } });
        pending[r.table] = list;
      }
      for (let attempt = 0; Object.keys(pending).length > 0; attempt++) {
        if (attempt > 8) throw new Error('DynamoDB kept rejecting mapping rows (unprocessed items)');
        if (attempt > 0) await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
        const out = await this.doc.send(new BatchWriteCommand({ RequestItems: pending }));
        pending = (out.UnprocessedItems ?? {}) as typeof pending;
      }
    }
  }

  /** Makes a migration's rows exactly these: writes them and removes rows of destinations it no longer has. */
  async replaceRows(
    migrationId: string,
    contentRows: readonly ContentMapRow[],
    locationRows: readonly LocationMapRow[],
  ): Promise<void> {
    await this.putRows(contentRows, locationRows);
    const [content, location] = await Promise.all([
      this.doc.send(
        new QueryCommand({
          TableName: this.tables.contentMap,
          KeyConditionExpression: 'migrationId = :m',
          ExpressionAttributeValues: { ':m': migrationId },
          ProjectionExpression: 'migrationId, rowKey',
        }),
      ),
      this.doc.send(
        new QueryCommand({
          TableName: this.tables.locationMap,
          KeyConditionExpression: 'migrationId = :m',
          ExpressionAttributeValues: { ':m': migrationId },
          ProjectionExpression: 'migrationId, destinationDataCenterId',
        }),
      ),
    ]);
    const keepContent = new Set(contentRows.map((r) => `${r.status}#${r.dataCenterId}`));
    const keepLocation = new Set(locationRows.map((r) => r.destinationDataCenterId));
    const stale = [
      ...(content.Items ?? [])
        .filter((i) => !keepContent.has(i['rowKey'] as string))
        .map((Key) => ({ TableName: this.tables.contentMap, Key })),
      ...(location.Items ?? [])
        .filter((i) => !keepLocation.has(i['destinationDataCenterId'] as string))
        .map((Key) => ({ TableName: this.tables.locationMap, Key })),
    ];
    await Promise.all(stale.map((d) => this.doc.send(new DeleteCommand(d))));
  }

  /** Records the image format on a migration's ContentMap rows once it is known. */
  async setFormat(
    migrationId: string,
    rows: readonly { status: 'SRC' | 'DEST'; dataCenterId: string }[],
    format: string,
  ) {
    await Promise.all(
      rows.map(async (r) => {
        try {
          await this.doc.send(
            new UpdateCommand({
              TableName: this.tables.contentMap,
              Key: { migrationId, rowKey: `${r.status}#${r.dataCenterId}` },
              UpdateExpression: 'SET #f = if_not_exists(#f, :f)',
              ConditionExpression: 'attribute_exists(migrationId)',
              ExpressionAttributeNames: { '#f': 'format' },
              ExpressionAttributeValues: { ':f': format },
            }),
          );
        } catch (err) {
          if ((err as Error).name !== 'ConditionalCheckFailedException') throw err;
        }
      }),
    );
  }

  async queryContentMap(filters: Filters, limit: number, cursor?: string): Promise<Page<ContentMapRow>> {
    const page = await this.query(this.tables.contentMap, CONTENT_MAP_ACCESS, filters, limit, cursor);
    return { ...page, items: page.items.map(({ rowKey: _, ...row }) => row as ContentMapRow) };
  }

  async queryLocationMap(
    filters: Filters,
    limit: number,
    cursor?: string,
    anyOf?: { readonly attributes: readonly string[]; readonly value: string },
  ): Promise<Page<LocationMapRow>> {
    const page = await this.query(
      this.tables.locationMap,
      LOCATION_MAP_ACCESS,
      filters,
      limit,
      cursor,
      anyOf,
    );
    return { ...page, items: page.items as LocationMapRow[] };
  }

  private async query(
    table: string,
    access: Access,
    filters: Filters,
    limit: number,
    cursor: string | undefined,
    anyOf?: { readonly attributes: readonly string[]; readonly value: string },
  ): Promise<Page<Record<string, unknown>>> {
    const given = Object.entries(filters).filter((e): e is [string, string] => e[1] !== undefined);
    const key = access.keys.find(([attr]) => filters[attr] !== undefined);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const conditions: string[] = [];
    // A Query may not filter on a key attribute of what it reads (LocationMap's sort key is
    // destinationDataCenterId): an equal sort key joins the key condition, and "either end" is checked after reading.
    const sortKey = key && key[1] === undefined ? access.table.sortKey?.name : undefined;
    const sortValue = sortKey === undefined ? undefined : filters[sortKey];
    given.forEach(([attr, value], i) => {
      if (key && attr === key[0]) return;
      if (sortValue !== undefined && attr === sortKey) return;
      names[`#f${i}`] = attr;
      values[`:f${i}`] = value;
      conditions.push(`#f${i} = :f${i}`);
    });
    const keep = (item: Record<string, unknown>) =>
      !anyOf || anyOf.attributes.some((a) => item[a] === anyOf.value);
    const items: Record<string, unknown>[] = [];
    let startKey = decodeCursor(cursor, cursorShape(access, key, key && filters[key[0]]));
    // A filter can leave a page short: keep reading until the page is full or the data ends.
    do {
      const common = {
        TableName: table,
        Limit: limit - items.length,
        ExclusiveStartKey: startKey,
        ...(conditions.length > 0 ? { FilterExpression: conditions.join(' AND ') } : {}),
      };
      let out: {
        Items?: Record<string, unknown>[] | undefined;
        LastEvaluatedKey?: Record<string, unknown> | undefined;
      };
      if (key) {
        names['#k'] = key[0];
        values[':k'] = filters[key[0]];
        if (sortKey !== undefined && sortValue !== undefined) {
          names['#sk'] = sortKey;
          values[':sk'] = sortValue;
        }
        out = await this.doc.send(
          new QueryCommand({
            ...common,
            ...(key[1] ? { IndexName: key[1] } : {}),
            KeyConditionExpression: sortValue === undefined ? '#k = :k' : '#k = :k AND #sk = :sk',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            ScanIndexForward: false,
          }),
        );
      } else {
        out = await this.doc.send(
          new ScanCommand({
            ...common,
            ...(Object.keys(names).length > 0 ? { ExpressionAttributeNames: names } : {}),
            ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
          }),
        );
      }
      // Limit counts items read, so dropping some here only shortens this read; the loop reads on.
      items.push(...(out.Items ?? []).filter(keep));
      startKey = out.LastEvaluatedKey;
    } while (startKey && items.length < limit);
    const next = encodeCursor(startKey);
    return { items, ...(next ? { nextCursor: next } : {}) };
  }
}
