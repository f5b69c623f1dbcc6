// RMG step (draft §3.1 steps 2-3): classify each destination local (same data center: a handover, no CDN) or
// remote, find the cache node of the source and of each remote destination, and write the ContentMap and
// LocationMap rows. Re-running keeps earlier choices while those nodes are still usable.
import type { ContentMapRow, LocationMapRow } from '../../protocol/api/mapping.ts';
import { MigrationTerminatedError } from '../aws/migration-store.ts';
import { isTerminal } from '../domain/migration.ts';
import type { DataCenterRecord } from '../domain/registry.ts';
import { chooseCacheNode } from '../domain/registry.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { TaskFailure, task } from './task.ts';

export interface ResolveOutput {
  readonly manifestReady: boolean;
  /** Every destination is the source's own data center: nothing crosses a network. */
  readonly allLocal: boolean;
}

export const handler = task(
  TASK_FUNCTIONS.resolve,
  async (deps, event: { migrationId: string }): Promise<ResolveOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    if (isTerminal(m.status)) throw new MigrationTerminatedError(`migration ${m.id} is already ${m.status}`);

    const nodes = await deps.registry.allCacheNodes();
    // An earlier choice stands while its node is active, or draining with this migration already holding a slot
    // there (a draining node finishes its work but takes no new work).
    const usable = (id: string | undefined): id is string => {
      const node = nodes.find((n) => n.id === id);
      if (!node || id === undefined) return false;
      return node.status === 'active' || (node.status === 'draining' && m.reservedCacheNodes.includes(id));
    };
    const dcs = new Map<string, DataCenterRecord>();
    for (const id of new Set([m.sourceDataCenterId, ...m.destinations])) {
      // Mark the data center as used first: from here on it cannot be removed under us.
      if (!(await deps.slots.addActiveMigration(id, m.id))) {
        throw new TaskFailure('DataCenterGone', `data center "${id}" is not registered (any more)`);
      }
      dcs.set(id, await deps.registry.requireDataCenter(id));
    }
    const dc = (id: string) => dcs.get(id) as DataCenterRecord;
    const pick = (d: DataCenterRecord, current: string | undefined): string => {
      if (usable(current)) return current;
      const choice = chooseCacheNode(d, nodes);
      if (!choice)
        throw new TaskFailure('NoActiveCacheNode', `no active cache node can serve data center "${d.id}"`);
      return choice.id;
    };
    const remote = m.destinations.filter((d) => !m.legs[d]?.local);
    const allLocal = remote.length === 0;
    const source = dc(m.sourceDataCenterId);
    const sourceNode = allLocal ? undefined : pick(source, m.sourceCacheNodeId);
    const legNodes = new Map<string, string>();
    for (const d of remote) {
      const leg = m.legs[d];
      legNodes.set(
        d,
        leg?.status === 'COMPLETED' && leg.cacheNodeId ? leg.cacheNodeId : pick(dc(d), leg?.cacheNodeId),
      );
    }

    const address = (id: string) => deps.cacheNodes.address(id);
    const row = (
      d: DataCenterRecord,
      node: string | undefined,
      status: 'SRC' | 'DEST',
      format?: string,
    ): ContentMapRow => ({
      migrationId: m.id,
      status,
      ...(node ? { cacheNodeId: node, cacheNodeAddress: address(node) } : {}),
      dataCenterId: d.id,
      dataCenterAddress: d.address,
      hostId: m.hostId,
      vmId: m.vmId,
      imageId: m.imageId,
      ...(format ? { format } : {}),
      createdAt: m.createdAt,
    });
    const contentRows = [
      row(source, sourceNode, 'SRC', m.image?.format),
      ...m.destinations.map((d) => row(dc(d), legNodes.get(d), 'DEST', m.legs[d]?.format ?? m.image?.format)),
    ];
    const locationRows: LocationMapRow[] = m.destinations.map((d) => {
      const node = legNodes.get(d);
      return {
        migrationId: m.id,
        ...(node && sourceNode
          ? {
              sourceCacheNodeId: sourceNode,
              sourceCacheNodeAddress: address(sourceNode),
              destinationCacheNodeId: node,
              destinationCacheNodeAddress: address(node),
            }
          : {}),
        sourceDataCenterId: source.id,
        sourceDataCenterAddress: source.address,
        destinationDataCenterId: d,
        destinationDataCenterAddress: dc(d).address,
        local: node === undefined,
        createdAt: m.createdAt,
      };
    });
    await deps.mapping.replaceRows(m.id, contentRows, locationRows);

    const changed =
      sourceNode !== m.sourceCacheNodeId || remote.some((d) => legNodes.get(d) !== m.legs[d]?.cacheNodeId);
    const describe = (d: string) =>
      legNodes.has(d) ? `${d} via ${legNodes.get(d)}` : `${d} (local handover)`;
    await deps.migrations.update(
      m.id,
      {
        set: [
          ...(sourceNode ? [[['sourceCacheNodeId'], sourceNode] as const] : []),
          ...remote.map((d) => [['legs', d, 'cacheNodeId'], legNodes.get(d)] as const),
        ],
      },
      changed || m.status === 'PENDING'
        ? {
            history: {
              event: 'resolved',
              message: `source ${source.id}${sourceNode ? ` via cache node ${sourceNode}` : ''}; ${m.destinations.map(describe).join(', ')}`,
            },
          }
        : {},
    );
    return { manifestReady: m.image !== undefined, allLocal };
  },
);
