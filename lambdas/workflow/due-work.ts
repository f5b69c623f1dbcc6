// Every minute (EventBridge Scheduler on AWS, a timer in the local cloud): start the scheduled migrations that are
// due, and wake migrations queued at a cache node that has room (a release whose wake-up was lost — a crash between
// the release and the wake — costs at most one tick). Idempotent: a start is found again until it is recorded, and
// StartExecution is idempotent per execution name.
import type { Uses } from '../aws/deps.ts';
import { isTerminal } from '../domain/migration.ts';
import { SCHEDULED_FUNCTIONS } from '../functions.ts';
import { SCHEDULE_LEAD_MS, startExecution } from './start-migration.ts';
import { task } from './task.ts';
import { wakeSlotWaiters } from './wake.ts';

export interface DueWorkReport {
  readonly started: readonly string[];
  readonly woken: number;
}

export async function runDueWork(
  deps: Uses<'migrations' | 'scheduledStarts' | 'registry' | 'slots' | 'waiters' | 'sfn' | 'stateMachineArn'>,
  now = new Date(),
): Promise<DueWorkReport> {
  const started: string[] = [];
  const due = await deps.scheduledStarts.due(new Date(now.getTime() + SCHEDULE_LEAD_MS).toISOString());
  for (const entry of due) {
    const m = await deps.migrations.get(entry.migrationId);
    // Cancelled, retried or already started meanwhile: the entry is done with.
    if (m && !isTerminal(m.status) && !m.executionArn && m.startAt === entry.startAt) {
      await startExecution(deps, m);
      started.push(m.id);
    }
    await deps.scheduledStarts.remove(entry);
  }
  let woken = 0;
  for (const node of await deps.registry.allCacheNodes()) woken += await wakeSlotWaiters(deps, node.id);
  return { started, woken };
}

export const handler = task(
  SCHEDULED_FUNCTIONS.dueWork,
  async (deps): Promise<DueWorkReport> => runDueWork(deps),
);
