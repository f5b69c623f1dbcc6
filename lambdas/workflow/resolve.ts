// RMG step (draft §3.1 steps 2-3): find the cache node of the source and of each destination, classify each
// leg local or remote, and write the ContentMap and LocationMap rows. Re-running keeps earlier choices while
// those nodes are still usable.
import type { ContentMapRow, LocationMapRow } from '../../protocol/api/mapping.ts';
import { MigrationTerminatedError } from '../aws/migration-store.ts';
import { isTerminal } from '../domain/migration.ts';
import type { DataCenterRecord } from '../domain/registry.ts';
import { chooseCacheNode } from '../domain/registry.ts';
import { TaskFailure, task } from './task.ts';

export interface ResolveOutput {
  readonly manifestReady: boolean;
  readonly destinations: { readonly dataCenterId: string; readonly done: boolean }[];
}

export const handler = task(async (deps, event: { migrationId: string }): Promise<ResolveOutput> => {
  const m = await deps.migrations.require(event.migrationId);
  if (isTerminal(m.status)) throw new MigrationTerminatedError(`migration ${m.id} is already ${m.status}`);

  const nodes = await deps.registry.allCacheNodes();
  const usable = (id: string | undefined): id is string => {
    const node = nodes.find((n) => n.id === id);
    return node !== undefined && node.status !== 'down';
  };
  const dcs = new Map<string, DataCenterRecord>();
  for (const id of [m.sourceDataCenterId, ...m.destinations]) {
    // Mark the data center as used first: from here on it cannot be removed under us.
    if (!(await deps.slots.addActiveMigration(id, m.id))) {
      throw new TaskFailure('DataCenterGone', `data center "${id}" is not registered (any more)`);
    }
    dcs.set(id, await deps.registry.requireDataCenter(id));
  }
  const pick = (dc: DataCenterRecord, current: string | undefined): string => {
    if (usable(current)) return current;
    const choice = chooseCacheNode(dc, nodes);
    if (!choice)
      throw new TaskFailure('NoActiveCacheNode', `no active cache node can serve data center "${dc.id}"`);
    return choice.id;
  };
  const source = dcs.get(m.sourceDataCenterId) as DataCenterRecord;
  const sourceNode = pick(source, m.sourceCacheNodeId);
  const legNodes = new Map<string, string>();
  for (const d of m.destinations) {
    const leg = m.legs[d];
    legNodes.set(
      d,
      leg?.status === 'COMPLETED' && leg.cacheNodeId
        ? leg.cacheNodeId
        : pick(dcs.get(d) as DataCenterRecord, leg?.cacheNodeId),
    );
  }

  const createdAt = m.createdAt;
  const address = (id: string) => deps.cacheNodes.address(id);
  const row = (
    dc: DataCenterRecord,
    node: string,
    status: 'SRC' | 'DEST',
    format?: string,
  ): ContentMapRow => ({
    migrationId: m.id,
    status,
    cacheNodeId: node,
    cacheNodeAddress: address(node),
    dataCenterId: dc.id,
    dataCenterAddress: dc.address,
    hostId: m.hostId,
    vmId: m.vmId,
    imageId: m.imageId,
    ...(format ? { format } : {}),
    createdAt,
  });
  const contentRows = [
    row(source, sourceNode, 'SRC', m.image?.format),
    ...m.destinations.map((d) =>
      row(
        dcs.get(d) as DataCenterRecord,
        legNodes.get(d) as string,
        'DEST',
        m.legs[d]?.format ?? m.image?.format,
      ),
    ),
  ];
  const locationRows: LocationMapRow[] = m.destinations.map((d) => {
    const dest = dcs.get(d) as DataCenterRecord;
    const node = legNodes.get(d) as string;
    return {
      migrationId: m.id,
      sourceCacheNodeId: sourceNode,
      sourceCacheNodeAddress: address(sourceNode),
      sourceDataCenterId: source.id,
      sourceDataCenterAddress: source.address,
      destinationCacheNodeId: node,
      destinationCacheNodeAddress: address(node),
      destinationDataCenterId: dest.id,
      destinationDataCenterAddress: dest.address,
      local: false,
      createdAt,
    };
  });
  await deps.mapping.putRows(contentRows, locationRows);

  const changed =
    sourceNode !== m.sourceCacheNodeId ||
    m.destinations.some((d) => legNodes.get(d) !== m.legs[d]?.cacheNodeId);
  await deps.migrations.update(
    m.id,
    {
      set: [
        [['sourceCacheNodeId'], sourceNode],
        ...m.destinations.map((d) => [['legs', d, 'cacheNodeId'], legNodes.get(d)] as const),
      ],
    },
    changed
      ? {
          history: {
            event: 'resolved',
            message: `source ${source.id} via cache node ${sourceNode}; ${m.destinations
              .map((d) => `${d} via ${legNodes.get(d)}`)
              .join(', ')}`,
          },
        }
      : {},
  );
  return {
    manifestReady: m.image !== undefined,
    destinations: m.destinations.map((d) => ({ dataCenterId: d, done: m.legs[d]?.status === 'COMPLETED' })),
  };
});
