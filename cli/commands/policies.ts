// Backup policy commands: a VM backed up to some destinations every interval, on its own.
import { type BackupPolicy, deletePolicy, listPolicies, putPolicy } from '../../protocol/api/policies.ts';
import type { ApiClient } from '../client.ts';
import { UsageError } from '../config.ts';
import { EXIT } from '../exit-codes.ts';
import { parseDestination, parseInterval } from './request.ts';

const useJson = (json?: boolean) => json === true || !process.stdout.isTTY;
/** How many completed runs the cache collector keeps at the destinations' cache nodes. */
const keptRuns = (p: BackupPolicy) => {
  const n = p.keepRuns ?? 1;
  return n === 0 ? 'no runs cached' : `${n} run${n === 1 ? '' : 's'} cached`;
};

export async function putPolicyCmd(
  source: ApiClient | (() => ApiClient),
  id: string,
  opts: {
    vm: string;
    imageId: string;
    host: string;
    from: string;
    to: string[];
    every: string;
    firstAt?: string;
    /** The former name of --first-at. */
    firstRun?: string;
    onCongestion?: string;
    queueTimeout?: number;
    keepRuns?: number;
    disabled?: boolean;
    json?: boolean;
  },
): Promise<number> {
  // An unreadable time is a bad command line (exit 2), not a failure to reach the API.
  if (opts.firstAt !== undefined && opts.firstRun !== undefined)
    throw new UsageError('give --first-at (or its former name --first-run), not both');
  const flag = opts.firstRun !== undefined ? '--first-run' : '--first-at';
  const firstText = opts.firstAt ?? opts.firstRun;
  const firstRun = firstText === undefined ? undefined : new Date(firstText);
  if (firstRun && (Number.isNaN(firstRun.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(firstText as string))) {
    throw new UsageError(`${flag} ${firstText}: expected an ISO 8601 time, e.g. 2026-05-01T02:00:00Z`);
  }
  const destinations = opts.to.map(parseDestination);
  const intervalMinutes = parseInterval(opts.every);
  const client = typeof source === 'function' ? source() : source;
  const { body, status } = await client.call<BackupPolicy>(putPolicy, {
    params: { policyId: id },
    json: {
      vmId: opts.vm,
      hostId: opts.host,
      imageId: opts.imageId,
      sourceDataCenterId: opts.from,
      destinations,
      intervalMinutes,
      ...(firstRun ? { firstRunAt: firstRun.toISOString() } : {}),
      enabled: !opts.disabled,
      ...(opts.onCongestion ? { onCongestion: opts.onCongestion } : {}),
      ...(opts.queueTimeout !== undefined ? { queueTimeoutSeconds: opts.queueTimeout } : {}),
      ...(opts.keepRuns !== undefined ? { keepRuns: opts.keepRuns } : {}),
    },
  });
  process.stdout.write(
    useJson(opts.json)
      ? `${JSON.stringify(body)}\n`
      : `${status === 201 ? 'created' : 'updated'} backup policy ${body.id}: ${body.vmId} every ${body.intervalMinutes} min to ${body.destinations.map((d) => d.dataCenterId).join(', ')}; keeps ${keptRuns(body)}; next run ${body.nextRunAt}\n`,
  );
  return EXIT.ok;
}

export async function listPoliciesCmd(client: ApiClient, opts: { json?: boolean }): Promise<number> {
  const { body } = await client.call<{ items: BackupPolicy[] }>(listPolicies, { query: { limit: 1000 } });
  if (!useJson(opts.json) && body.items.length === 0) process.stdout.write('no backup policies\n');
  for (const p of body.items) {
    process.stdout.write(
      useJson(opts.json)
        ? `${JSON.stringify(p)}\n`
        : `${p.id.padEnd(20)} ${p.enabled ? 'enabled ' : 'disabled'} ${p.vmId} ${p.sourceDataCenterId} -> ${p.destinations.map((d) => d.dataCenterId).join(',')} every ${p.intervalMinutes} min; keeps ${keptRuns(p)}; next ${p.nextRunAt}` +
            (p.lastRun
              ? `; last ${p.lastRun.at} ${p.lastRun.migrationId ?? ''} ${p.lastRun.status ?? p.lastRun.skipped ?? ''}`
              : '') +
            '\n',
    );
  }
  return EXIT.ok;
}

export async function removePolicy(client: ApiClient, id: string): Promise<number> {
  await client.call(deletePolicy, { params: { policyId: id } });
  process.stdout.write(`removed backup policy ${id}\n`);
  return EXIT.ok;
}
