// Helpers for tests that run migrations through the API.
import { randomUUID } from 'node:crypto';
import type { ApiClient } from '../../cli/client.ts';
import { parseDestination } from '../../cli/commands/request.ts';
import {
  createMigration,
  getMigration,
  type Migration,
  TERMINAL_STATUSES,
} from '../../protocol/api/migrations.ts';

export async function startMigration(
  admin: ApiClient,
  input: { imageId: string; from: string; to: string[]; vmId?: string; overwrite?: boolean },
): Promise<Migration> {
  const { body } = await admin.call<Migration>(createMigration, {
    json: {
      vmId: input.vmId ?? 'vm-test',
      hostId: 'host-1',
      imageId: input.imageId,
      sourceDataCenterId: input.from,
      // `dc-osa:vpc` asks for a format at that destination, as on the command line.
      destinations: input.to.map(parseDestination),
      ...(input.overwrite ? { overwrite: true } : {}),
    },
    headers: { 'idempotency-key': randomUUID() },
  });
  return body;
}

export const getOne = async (admin: ApiClient, id: string) =>
  (await admin.call<Migration>(getMigration, { params: { migrationId: id } })).body;

/** Polls until the migration satisfies `done` (default: a terminal status). */
export async function waitForMigration(
  admin: ApiClient,
  id: string,
  done: (m: Migration) => boolean = (m) => TERMINAL_STATUSES.includes(m.status),
  timeoutMs = 120_000,
): Promise<Migration> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await getOne(admin, id);
    if (done(m)) return m;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${id}: ${JSON.stringify(m, null, 1).slice(0, 2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
