// Creating and starting a migration, shared by the API (single and batch requests) and backup policies.
// Creation is idempotent per migration id; starting re-finds an execution already started.
import { StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { z } from 'zod';
import type { CreateMigration } from '../../protocol/api/migrations.ts';
import type { Uses } from '../aws/deps.ts';
import { conflict, invalid } from '../domain/errors.ts';
import { greatCircleKm } from '../domain/geo.ts';
import { EMPTY_UPLOAD, type MigrationRecord, newLeg } from '../domain/migration.ts';
import { chooseCacheNode } from '../domain/registry.ts';

export type MigrationRequest = Omit<z.output<typeof CreateMigration>, 'overwrite'> & {
  readonly overwrite?: boolean;
  readonly batchId?: string;
  readonly policyId?: string;
};

/** Checks the request against the registry and builds the migration's first record. */
export async function buildMigration(
  deps: Uses<'registry'>,
  id: string,
  req: MigrationRequest,
  now: Date,
): Promise<MigrationRecord> {
  let destinations = req.destinations ?? [];
  let placement: MigrationRecord['placement'];
  if (req.near) {
    // A desktop near its user (draft §4.3): the nearest data center that a usable cache node serves.
    const [dcs, nodes] = await Promise.all([deps.registry.allDataCenters(), deps.registry.allCacheNodes()]);
    const candidates = dcs
      .filter((dc) => chooseCacheNode(dc, nodes) !== null)
      .map((dc) => ({ dc, km: greatCircleKm(req.near as { lat: number; lon: number }, dc.location) }))
      .sort((a, b) => a.km - b.km || a.dc.id.localeCompare(b.dc.id));
    const best = candidates[0];
    if (!best) throw conflict('no data center with an active cache node can take this desktop');
    placement = {
      near: { lat: req.near.lat, lon: req.near.lon },
      dataCenterId: best.dc.id,
      distanceKm: Math.round(best.km * 10) / 10,
    };
    destinations = [{ dataCenterId: best.dc.id, ...(req.near.format ? { format: req.near.format } : {}) }];
  }
  // The registry reads are independent: one round trip instead of one per data center.
  const [source, ...destinationDcs] = await Promise.all([
    deps.registry.requireDataCenter(req.sourceDataCenterId),
    ...destinations.map((d) => deps.registry.getDataCenter(d.dataCenterId)),
  ]);
  for (const [i, d] of destinations.entries()) {
    const dc = destinationDcs[i];
    if (!dc) throw invalid(`destinations.${i}.dataCenterId`, `unknown data center "${d.dataCenterId}"`);
    // Cross-hypervisor delivery converts with qemu-img at the destination: refuse now, not after the transfer.
    if (d.format && dc.agent && !dc.agent.qemuImg) {
      throw conflict(
        `destination ${dc.id} asks for ${d.format}, but its agent (seen ${dc.agent.seenAt}) has no qemu-img to convert with: ` +
          'install qemu-utils there, or leave the format out',
        { field: `destinations.${i}.format` },
      );
    }
  }
  if (req.startAt && Date.parse(req.startAt) > now.getTime() + 366 * 86400_000) {
    throw invalid('startAt', 'must be within a year');
  }
  const at = now.toISOString();
  return {
    id,
    status: 'PENDING',
    attempt: 1,
    mode: req.mode,
    onCongestion: req.onCongestion,
    queueTimeoutSeconds: req.queueTimeoutSeconds,
    ...(req.overwrite ? { overwrite: true } : {}),
    ...(req.startAt ? { startAt: new Date(req.startAt).toISOString() } : {}),
    ...(req.application ? { application: req.application } : {}),
    ...(req.batchId ? { batchId: req.batchId } : {}),
    ...(req.policyId ? { policyId: req.policyId } : {}),
    ...(placement ? { placement } : {}),
    sourceReleased: false,
    vmId: req.vmId,
    hostId: req.hostId,
    imageId: req.imageId,
    sourceDataCenterId: source.id,
    destinations: destinations.map((d) => d.dataCenterId),
    legs: Object.fromEntries(
      destinations.map((d) => [d.dataCenterId, newLeg(d.dataCenterId, source.id, d.format)]),
    ),
    upload: EMPTY_UPLOAD,
    reservedCacheNodes: [],
    createdAt: at,
    updatedAt: at,
  };
}

/** Creates the migration unless it exists, and starts its current attempt unless started. */
export async function createAndStart(
  deps: Uses<'migrations' | 'slots' | 'sfn' | 'stateMachineArn' | 'scheduledStarts'>,
  record: MigrationRecord,
): Promise<MigrationRecord> {
  const created = await deps.migrations.create(record);
  if (created) {
    const notes = [
      record.application ? `triggered by application ${record.application}` : undefined,
      record.policyId ? `run of backup policy ${record.policyId}` : undefined,
      record.batchId ? `part of batch ${record.batchId}` : undefined,
      record.placement
        ? `nearest data center to (${record.placement.near.lat}, ${record.placement.near.lon}): ${record.placement.dataCenterId}, ${record.placement.distanceKm} km`
        : undefined,
      record.startAt ? `scheduled for ${record.startAt}` : undefined,
    ].filter((n): n is string => n !== undefined);
    if (notes.length > 0) await deps.migrations.addHistory(record.id, 'requested', notes.join('; '));
  }
  // Created by this call: the record is what was written. Otherwise (a retry) read what is there.
  const m = created ? record : await deps.migrations.require(record.id);
  // Hold the data centers from now on, not from when the workflow reaches them: a migration scheduled for
  // tomorrow must keep its data centers from being removed today.
  const dcs = [...new Set([m.sourceDataCenterId, ...m.destinations])];
  const held = await Promise.all(dcs.map((dc) => deps.slots.addActiveMigration(dc, m.id)));
  const removed = dcs.find((_, i) => !held[i]);
  if (removed) throw conflict(`data center "${removed}" was removed while the migration was being created`);
  if (m.executionArn) return m;
  // A far start is an entry the scheduler finds when it is due, not an execution waiting for weeks.
  if (m.startAt && Date.parse(m.startAt) - Date.now() > SCHEDULE_LEAD_MS) {
    await deps.scheduledStarts.add({ migrationId: m.id, startAt: m.startAt });
    return m;
  }
  return startExecution(deps, m);
}

/**
 * Migrations starting within this lead are started at once (their execution waits the rest, at most this long);
 * later ones are started by the scheduler, which runs every minute.
 */
export const SCHEDULE_LEAD_MS = 90_000;

export async function startExecution(
  deps: Uses<'migrations' | 'sfn' | 'stateMachineArn'>,
  m: MigrationRecord,
): Promise<MigrationRecord> {
  const out = await deps.sfn.send(
    new StartExecutionCommand({
      stateMachineArn: deps.stateMachineArn,
      name: `${m.id}-a${m.attempt}`,
      input: JSON.stringify({
        migrationId: m.id,
        attempt: m.attempt,
        ...(m.startAt ? { startAt: m.startAt } : {}),
      }),
    }),
  );
  await deps.migrations.update(
    m.id,
    { set: [[['executionArn'], out.executionArn]] },
    { requireActive: false },
  );
  return deps.migrations.require(m.id);
}
