// Operator commands: migrate, status, ls, cancel, retry.
import { randomUUID } from 'node:crypto';
import {
  cancelMigration,
  createMigration,
  getMigration,
  listMigrations,
  type Migration,
  retryMigration,
  TERMINAL_STATUSES,
} from '../../protocol/api/migrations.ts';
import type { ApiClient } from '../client.ts';
import { EXIT } from '../exit-codes.ts';
import { describe, formatBytes, LiveView, summaryLine } from '../render.ts';

export interface OutputFlags {
  readonly json?: boolean | undefined;
}

const useJson = (flags: OutputFlags) => flags.json === true || !process.stdout.isTTY;

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
    if (key !== last) view.update(m);
    last = key;
    if (TERMINAL_STATUSES.includes(m.status)) return m;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const exitFor = (m: Migration) => (m.status === 'COMPLETED' ? EXIT.ok : EXIT.migrationFailed);

export async function migrate(
  client: ApiClient,
  opts: {
    vm: string;
    imageId: string;
    from: string;
    to: string[];
    host: string;
    wait?: boolean;
    idempotencyKey?: string;
  } & OutputFlags,
): Promise<number> {
  const started = Date.now();
  const { body: m } = await client.call<Migration>(createMigration, {
    json: {
      vmId: opts.vm,
      hostId: opts.host,
      imageId: opts.imageId,
      sourceDataCenterId: opts.from,
      destinations: opts.to.map((dataCenterId) => ({ dataCenterId })),
    },
    // A retried request (network hiccup) must not start a second migration.
    headers: { 'idempotency-key': opts.idempotencyKey ?? randomUUID() },
  });
  if (!opts.wait) {
    if (useJson(opts)) process.stdout.write(`${JSON.stringify(m)}\n`);
    else process.stdout.write(`${m.id}\n`);
    return EXIT.ok;
  }
  if (!useJson(opts))
    process.stdout.write(`migration ${m.id} started: ${opts.from} -> ${opts.to.join(', ')}\n`);
  const final = await watch(client, m.id, opts);
  if (!useJson(opts)) {
    const seconds = (Date.now() - started) / 1000;
    const size = final.image?.size ?? 0;
    process.stdout.write(
      `${final.status} in ${seconds.toFixed(1)} s: image ${formatBytes(size)}, uploaded ${formatBytes(final.upload.bytesDone)}, ` +
        `replicated ${formatBytes(final.legs.reduce((n, l) => n + l.bytesReplicated, 0))}, ` +
        `downloaded ${formatBytes(final.legs.reduce((n, l) => n + l.bytesDownloaded, 0))}\n`,
    );
  }
  return exitFor(final);
}

export async function status(
  client: ApiClient,
  id: string,
  opts: { watch?: boolean } & OutputFlags,
): Promise<number> {
  if (opts.watch) return exitFor(await watch(client, id, opts));
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
      `${m.id}  ${m.status.padEnd(11)} ${m.vmId.padEnd(12)} ${m.sourceDataCenterId} -> ${m.legs.map((l) => l.dataCenterId).join(',')}  ${m.createdAt}\n`,
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
  opts: { wait?: boolean } & OutputFlags,
): Promise<number> {
  const { body } = await client.call<Migration>(retryMigration, { params: { migrationId: id } });
  if (opts.wait) return exitFor(await watch(client, body.id, opts));
  print(body, opts);
  return EXIT.ok;
}
