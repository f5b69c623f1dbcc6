// Registry commands: data centers and cache nodes can change at runtime (draft §5.1 item 3 names their absence
// as a limit of the scheme).

import type { CacheNode, DataCenter } from '../../protocol/api/registry.ts';
import {
  deleteDataCenter,
  listCacheNodes,
  listDataCenters,
  patchCacheNode,
  putDataCenter,
} from '../../protocol/api/registry.ts';
import { formatBytes } from '../../protocol/bytes.ts';
import type { ApiClient } from '../client.ts';
import { UsageError } from '../config.ts';
import { EXIT } from '../exit-codes.ts';

/** true: --json; false: --no-json (text even when stdout is not a terminal); undefined: text on a terminal. */
const useJson = (json?: boolean) => json === true || (json === undefined && !process.stdout.isTTY);

export async function listDcs(client: ApiClient, opts: { json?: boolean }): Promise<number> {
  const { body } = await client.call<{ items: DataCenter[] }>(listDataCenters, { query: { limit: 1000 } });
  for (const dc of body.items) {
    process.stdout.write(
      useJson(opts.json)
        ? `${JSON.stringify(dc)}\n`
        : `${dc.id.padEnd(10)} ${dc.name.padEnd(20)} ${dc.address.padEnd(14)} cache node ${dc.cacheNode ? `${dc.cacheNode.id} (${dc.cacheNode.reason}, ${dc.cacheNode.distanceKm} km)` : 'none active'}` +
            `${dc.activeMigrations.length ? `  active: ${dc.activeMigrations.join(', ')}` : ''}\n`,
    );
  }
  return EXIT.ok;
}

export async function addDc(
  client: ApiClient,
  id: string,
  opts: { name: string; address: string; location: string; home?: string; json?: boolean },
): Promise<number> {
  const [lat, lon] = opts.location.split(',').map(Number);
  if (lat === undefined || lon === undefined || Number.isNaN(lat) || Number.isNaN(lon)) {
    throw new UsageError(`--location ${opts.location}: expected LAT,LON`);
  }
  const { body, status } = await client.call<DataCenter>(putDataCenter, {
    params: { dataCenterId: id },
    json: {
      name: opts.name,
      address: opts.address,
      location: { lat, lon },
      ...(opts.home ? { homeCacheNode: opts.home } : {}),
    },
  });
  process.stdout.write(
    useJson(opts.json)
      ? `${JSON.stringify(body)}\n`
      : `${status === 201 ? 'registered' : 'updated'} ${body.id}; cache node ${body.cacheNode?.id ?? 'none active'} (${body.cacheNode?.reason ?? '-'})\n`,
  );
  return EXIT.ok;
}

export async function removeDc(client: ApiClient, id: string): Promise<number> {
  await client.call(deleteDataCenter, { params: { dataCenterId: id } });
  process.stdout.write(`removed ${id}\n`);
  return EXIT.ok;
}

const budgetText = (n: Pick<CacheNode, 'budgetBytes'>) =>
  n.budgetBytes === undefined ? 'unlimited' : formatBytes(n.budgetBytes);

/** One line per node: slots, then space (held of the budget, reserved by admitted migrations, evictable). */
export function nodeLine(n: CacheNode): string {
  const slots = `${n.activeTransfers}/${n.capacity}`.padStart(5);
  const held = `${formatBytes(n.bytesHeld).padStart(10)} / ${budgetText(n).padEnd(10)}`;
  const evictable = n.collection ? formatBytes(n.collection.evictableBytes) : '-';
  return (
    `${n.id.padEnd(6)} ${n.name.padEnd(12)} ${n.region.padEnd(15)} ${n.status.padEnd(9)} ${slots} transfers  ` +
    `held ${held}  reserved ${formatBytes(n.bytesReserved).padStart(10)}  evictable ${evictable.padStart(10)}  ` +
    n.address
  );
}

export async function listNodes(client: ApiClient, opts: { json?: boolean }): Promise<number> {
  const { body } = await client.call<{ items: CacheNode[] }>(listCacheNodes, { query: { limit: 1000 } });
  for (const n of body.items) {
    process.stdout.write(useJson(opts.json) ? `${JSON.stringify(n)}\n` : `${nodeLine(n)}\n`);
  }
  return EXIT.ok;
}

export async function setNode(
  client: ApiClient,
  id: string,
  /** `budget`: bytes, or none to remove the budget. */
  opts: { status?: string; capacity?: number; budget?: number | 'none'; json?: boolean },
): Promise<number> {
  if (opts.status === undefined && opts.capacity === undefined && opts.budget === undefined)
    throw new UsageError('give --status, --capacity or --budget (or several)');
  const { body } = await client.call<CacheNode>(patchCacheNode, {
    params: { cacheNodeId: id },
    json: {
      ...(opts.status ? { status: opts.status } : {}),
      ...(opts.capacity !== undefined ? { capacity: opts.capacity } : {}),
      ...(opts.budget !== undefined ? { budgetBytes: opts.budget === 'none' ? null : opts.budget } : {}),
    },
  });
  process.stdout.write(
    useJson(opts.json)
      ? `${JSON.stringify(body)}\n`
      : `${body.id}: ${body.status}, capacity ${body.capacity}, budget ${budgetText(body)} ` +
          `(${formatBytes(body.bytesHeld)} held)\n`,
  );
  return EXIT.ok;
}
