// Backup policies run on their own: every tick (a timer in the local cloud, EventBridge Scheduler on AWS) the
// due policies start a backup migration. The migration id is derived from the policy and the slot, and the
// slot advances with a conditional write, so a tick that runs twice starts nothing twice. A policy whose last
// backup is still running skips the slot rather than piling up.
import { createHash } from 'node:crypto';
import type { BackupPolicy } from '../../protocol/api/policies.ts';
import type { Uses } from '../aws/deps.ts';
import { isTerminal } from '../domain/migration.ts';
import { SCHEDULED_FUNCTIONS } from '../functions.ts';
import { buildMigration, createAndStart } from './start-migration.ts';
import { task } from './task.ts';

export function policyMigrationId(policyId: string, slot: string): string {
  const hex = createHash('sha256').update(`policy:${policyId}@${slot}`).digest('hex');
  return `mig-${BigInt(`0x${hex}`).toString(36).padStart(26, '0').slice(0, 26)}`;
}

export function nextSlot(policy: Pick<BackupPolicy, 'nextRunAt' | 'intervalMinutes'>, now: Date): string {
  let next = Date.parse(policy.nextRunAt);
  const step = policy.intervalMinutes * 60_000;
  // Missed slots (the scheduler was down) are skipped, not run back to back.
  while (next <= now.getTime()) next += step;
  return new Date(next).toISOString();
}

export interface PolicyRunReport {
  readonly started: { policyId: string; migrationId: string }[];
  readonly skipped: { policyId: string; reason: string }[];
}

export async function runDuePolicies(
  deps: Uses<
    'policies' | 'migrations' | 'registry' | 'slots' | 'sfn' | 'stateMachineArn' | 'scheduledStarts'
  >,
  now = new Date(),
): Promise<PolicyRunReport> {
  const { policies } = deps;
  const report: PolicyRunReport = { started: [], skipped: [] };
  let cursor: string | undefined;
  do {
    const page = await policies.list(100, cursor);
    cursor = page.nextCursor;
    for (const policy of page.items) {
      if (!policy.enabled || Date.parse(policy.nextRunAt) > now.getTime()) continue;
      const slot = policy.nextRunAt;
      const next = nextSlot(policy, now);
      const previous = policy.lastRun?.migrationId
        ? await deps.migrations.get(policy.lastRun.migrationId)
        : undefined;
      if (previous && !isTerminal(previous.status)) {
        const reason = `backup ${previous.id} is still ${previous.status}`;
        if (
          await policies.advance(policy, slot, next, {
            at: now.toISOString(),
            migrationId: previous.id,
            skipped: reason,
          })
        ) {
          report.skipped.push({ policyId: policy.id, reason });
        }
        continue;
      }
      const id = policyMigrationId(policy.id, slot);
      try {
        const record =
          (await deps.migrations.get(id)) ??
          (await buildMigration(
            deps,
            id,
            {
              vmId: policy.vmId,
              hostId: policy.hostId,
              imageId: policy.imageId,
              sourceDataCenterId: policy.sourceDataCenterId,
              destinations: policy.destinations,
              mode: 'backup',
              onCongestion: policy.onCongestion,
              queueTimeoutSeconds: policy.queueTimeoutSeconds,
              policyId: policy.id,
            },
            now,
          ));
        await createAndStart(deps, record);
      } catch (err) {
        // A policy that cannot run (its data center was removed…) records why and tries the next slot.
        const reason = `could not start: ${(err as Error).message}`;
        if (await policies.advance(policy, slot, next, { at: now.toISOString(), skipped: reason })) {
          report.skipped.push({ policyId: policy.id, reason });
        }
        continue;
      }
      if (await policies.advance(policy, slot, next, { at: now.toISOString(), migrationId: id })) {
        report.started.push({ policyId: policy.id, migrationId: id });
      }
    }
  } while (cursor);
  return report;
}

export const handler = task(
  SCHEDULED_FUNCTIONS.runPolicies,
  async (deps): Promise<PolicyRunReport> => runDuePolicies(deps),
);
