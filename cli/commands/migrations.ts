// Operator commands: migrate (one VM, several, a batch file, or near a user), status, ls, cancel, retry, decide.
import { randomUUID } from 'node:crypto';
import { type Batch, createBatch, getBatch } from '../../protocol/api/batches.ts';
import {
  cancelMigration,
  createMigration,
  decideMigration,
  getMigration,
  listMigrations,
  type Migration,
  retryMigration,
  TERMINAL_STATUSES,
} from '../../protocol/api/migrations.ts';
import type { ApiClient } from '../client.ts';
import { UsageError } from '../config.ts';
import { EXIT } from '../exit-codes.ts';
import { batchSummary, describe, describeBatch, LiveView, migrationSummary, summaryLine } from '../render.ts';
import { parseDestination, parseNear, parseVms } from './request.ts';

export interface OutputFlags {
  /** true: --json; false: --no-json (text even when stdout is not a terminal); undefined: text on a terminal. */
  readonly json?: boolean | undefined;
}

export const useJson = (flags: OutputFlags) =>
  flags.json === true || (flags.json === undefined && !process.stdout.isTTY);

/** A client, or how to get one: commands check their input before they look for the API. */
export type ClientSource = ApiClient | (() => ApiClient);
const clientOf = (source: ClientSource) => (typeof source === 'function' ? source() : source);

function print(m: Migration, flags: OutputFlags): void {
  if (useJson(flags)) process.stdout.write(`${JSON.stringify(m)}\n`);
  else process.stdout.write(`${describe(m).join('\n')}\n`);
}

/** Follows a migration until it ends; returns its final state. */
export async function watch(
  client: ApiClient,
  id: string,
  flags: OutputFlags,
  intervalMs = 1000,
): Promise<Migration> {
  const view = new LiveView(!useJson(flags));
  let last = '';
  for (;;) {
    const { body: m } = await client.call<Migration>(getMigration, { params: { migrationId: id } });
    const key = JSON.stringify(summaryLine(m));
    if (key !== last) view.update(describe(m), summaryLine(m));
    last = key;
    if (TERMINAL_STATUSES.includes(m.status)) return m;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function watchBatch(
  client: ApiClient,
  id: string,
  flags: OutputFlags,
  intervalMs = 1000,
): Promise<Batch> {
  const view = new LiveView(!useJson(flags));
  let last = '';
  for (;;) {
    const { body: b } = await client.call<Batch>(getBatch, { params: { batchId: id } });
    const summary = { id: b.id, status: b.status, counts: b.counts, bytes: b.bytes, slowest: b.slowest };
    const key = JSON.stringify(summary);
    if (key !== last) view.update(describeBatch(b), summary);
    last = key;
    if (b.status !== 'RUNNING') return b;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const exitFor = (status: string) => (status === 'COMPLETED' ? EXIT.ok : EXIT.migrationFailed);

export interface MigrateFlags extends OutputFlags {
  readonly vm?: string[];
  readonly imageId?: string;
  readonly batch?: string;
  readonly host: string;
  readonly from: string;
  readonly to?: string[];
  readonly near?: string;
  readonly mode?: string;
  readonly onCongestion?: string;
  readonly queueTimeout?: number;
  readonly startAt?: string;
  readonly application?: string;
  readonly overwrite?: boolean;
  readonly wait?: boolean;
}

export async function migrate(source: ClientSource, opts: MigrateFlags): Promise<number> {
  const vms = parseVms(opts.vm, opts.imageId, opts.host, opts.batch);
  if ((opts.to?.length ?? 0) === 0 && !opts.near)
    throw new UsageError('give --to DC (repeatable) or --near LAT,LON');
  if (opts.to?.length && opts.near) throw new UsageError('give either --to or --near, not both');
  const startAt = opts.startAt === undefined ? undefined : new Date(opts.startAt);
  if (startAt && Number.isNaN(startAt.getTime())) {
    throw new UsageError(`--start-at ${opts.startAt}: expected an ISO 8601 time, e.g. 2026-05-01T02:00:00Z`);
  }
  const options = {
    ...(opts.mode ? { mode: opts.mode } : {}),
    ...(opts.onCongestion ? { onCongestion: opts.onCongestion } : {}),
    ...(opts.queueTimeout !== undefined ? { queueTimeoutSeconds: opts.queueTimeout } : {}),
    ...(startAt ? { startAt: startAt.toISOString() } : {}),
    ...(opts.application ? { application: opts.application } : {}),
    ...(opts.overwrite ? { overwrite: true } : {}),
  };
  const destinations = opts.to?.map(parseDestination);
  const near = opts.near === undefined ? undefined : parseNear(opts.near);
  if ((vms.length > 1 || opts.batch) && !destinations)
    throw new UsageError('a batch needs --to (not --near)');
  const client = clientOf(source);
  // A retried request (network hiccup) must not start a second migration.
  const headers = { 'idempotency-key': randomUUID() };
  const started = Date.now();
  if (vms.length > 1 || opts.batch) {
    const { body: b } = await client.call<Batch>(createBatch, {
      json: { sourceDataCenterId: opts.from, destinations, vms, ...options },
      headers,
    });
    if (!opts.wait) {
      process.stdout.write(useJson(opts) ? `${JSON.stringify(b)}\n` : `${b.id}\n`);
      return EXIT.ok;
    }
    if (!useJson(opts))
      process.stdout.write(`batch ${b.id}: ${vms.length} VMs ${opts.from} -> ${opts.to?.join(', ')}\n`);
    return followBatch(client, b.id, opts, started);
  }
  const vm = vms[0] as (typeof vms)[number];
  const { body: m } = await client.call<Migration>(createMigration, {
    json: {
      vmId: vm.vmId,
      hostId: vm.hostId,
      imageId: vm.imageId,
      sourceDataCenterId: opts.from,
      ...(destinations ? { destinations } : { near }),
      ...options,
    },
    headers,
  });
  if (!opts.wait) {
    process.stdout.write(useJson(opts) ? `${JSON.stringify(m)}\n` : `${m.id}\n`);
    return EXIT.ok;
  }
  if (!useJson(opts)) {
    const where = m.placement
      ? `${m.placement.dataCenterId} (nearest to ${m.placement.near.lat},${m.placement.near.lon}: ${m.placement.distanceKm} km)`
      : m.legs.map((l) => l.dataCenterId).join(', ');
    process.stdout.write(`migration ${m.id} started: ${opts.from} -> ${where}\n`);
  }
  return follow(client, m.id, opts, started);
}

/**
 * Follows a migration until it ends and closes with its summary (text output); the exit code says how it ended.
 * `started`: when the command started it (the summary then says how long it took).
 */
async function follow(client: ApiClient, id: string, opts: OutputFlags, started?: number): Promise<number> {
  const final = await watch(client, id, opts);
  if (!useJson(opts)) {
    const seconds = started === undefined ? undefined : (Date.now() - started) / 1000;
    process.stdout.write(`${migrationSummary(final, seconds).join('\n')}\n`);
  }
  return exitFor(final.status);
}

async function followBatch(
  client: ApiClient,
  id: string,
  opts: OutputFlags,
  started?: number,
): Promise<number> {
  const final = await watchBatch(client, id, opts);
  if (!useJson(opts)) {
    const seconds = started === undefined ? undefined : (Date.now() - started) / 1000;
    process.stdout.write(`${batchSummary(final, seconds).join('\n')}\n`);
  }
  return exitFor(final.status);
}

export async function status(
  client: ApiClient,
  id: string,
  opts: { watch?: boolean } & OutputFlags,
): Promise<number> {
  if (id.startsWith('batch-')) {
    if (opts.watch) return followBatch(client, id, opts);
    const { body } = await client.call<Batch>(getBatch, { params: { batchId: id } });
    process.stdout.write(useJson(opts) ? `${JSON.stringify(body)}\n` : `${describeBatch(body).join('\n')}\n`);
    return EXIT.ok;
  }
  if (opts.watch) return follow(client, id, opts);
  const { body } = await client.call<Migration>(getMigration, { params: { migrationId: id } });
  print(body, opts);
  if (!useJson(opts) && body.history) {
    process.stdout.write('  history\n');
    for (const h of body.history) process.stdout.write(`    ${h.at}  ${h.event.padEnd(22)} ${h.message}\n`);
  }
  return EXIT.ok;
}

export async function list(
  client: ApiClient,
  opts: { status?: string; limit?: number } & OutputFlags,
): Promise<number> {
  const { body } = await client.call<{ items: Migration[]; nextCursor?: string }>(listMigrations, {
    query: { limit: opts.limit ?? 50, status: opts.status },
  });
  if (useJson(opts)) {
    for (const m of body.items) process.stdout.write(`${JSON.stringify(summaryLine(m))}\n`);
    return EXIT.ok;
  }
  if (body.items.length === 0) process.stdout.write('no migrations\n');
  for (const m of body.items) {
    process.stdout.write(
      `${m.id}  ${m.status.padEnd(17)} ${m.mode.padEnd(7)} ${m.vmId.padEnd(12)} ${m.sourceDataCenterId} -> ${m.legs.map((l) => l.dataCenterId).join(',')}  ${m.createdAt}\n`,
    );
  }
  return EXIT.ok;
}

export async function cancel(client: ApiClient, id: string, opts: OutputFlags): Promise<number> {
  const { body } = await client.call<Migration>(cancelMigration, { params: { migrationId: id } });
  print(body, opts);
  return EXIT.ok;
}

export async function retry(
  client: ApiClient,
  id: string,
  opts: { wait?: boolean; destination?: string[] } & OutputFlags,
): Promise<number> {
  const started = Date.now();
  const { body } = await client.call<Migration>(retryMigration, {
    params: { migrationId: id },
    json: opts.destination?.length ? { destinations: opts.destination } : {},
  });
  if (opts.wait) return follow(client, body.id, opts, started);
  print(body, opts);
  return EXIT.ok;
}

export async function decide(
  client: ApiClient,
  id: string,
  opts: { accept?: boolean; reject?: boolean } & OutputFlags,
) {
  if (opts.accept === opts.reject) throw new UsageError('give exactly one of --accept or --reject');
  const { body } = await client.call<Migration>(decideMigration, {
    params: { migrationId: id },
    json: { accept: opts.accept === true },
  });
  print(body, opts);
  return EXIT.ok;
}
