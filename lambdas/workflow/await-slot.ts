// A callback step (.waitForTaskToken) for a migration queued at a full cache node: it leaves a waiter with its task
// token, and the step ends when a release wakes it (lambdas/workflow/wake.ts), or times out when the queue timeout
// is up. However long the wait, it costs no state transitions. A slot that freed between Admit and here is not
// missed: the waiters are woken at once if the node has room. A migration queued for cache space waits on its own
// topic, woken when room is made (the collector freed bytes, a budget grew, a reservation was given back); room
// made between Admit and here is seen the same way.
import { taskSucceeded } from '../aws/callbacks.ts';
import { slotTopic, slotWaitOrder, spaceTopic } from '../aws/waiters.ts';
import { spaceFor } from '../domain/cache-space.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { task } from './task.ts';
import { wakeSlotWaiters, wakeSpaceWaiters } from './wake.ts';

export interface AwaitSlotEvent {
  readonly migrationId: string;
  readonly taskToken: string;
}

export const handler = task(TASK_FUNCTIONS.awaitSlot, async (deps, event: AwaitSlotEvent): Promise<void> => {
  const m = await deps.migrations.require(event.migrationId);
  if (m.status !== 'QUEUED' || !m.queuedAt || !m.queuedSince) {
    // Nothing to wait for (cancelled meanwhile, or a re-run after a restart): Admit decides again.
    await taskSucceeded(deps.sfn, event.taskToken, { woken: 'not-queued' });
    return;
  }
  const forSpace = m.queuedFor === 'space';
  await deps.waiters.add({
    topic: (forSpace ? spaceTopic : slotTopic)(m.queuedAt),
    order: slotWaitOrder(m.queuedSince, m.id),
    migrationId: m.id,
    taskToken: event.taskToken,
  });
  if (!forSpace) {
    await wakeSlotWaiters(deps, m.queuedAt);
    return;
  }
  const [node, usage] = await Promise.all([
    deps.slots.spaceItem(m.queuedAt),
    deps.contentIndex.usage(m.queuedAt),
  ]);
  if (spaceFor({ ...node, bytesHeld: usage.bytesHeld }, m.id, m.queuedNeed ?? 0).fits)
    await wakeSpaceWaiters(deps, m.queuedAt);
});
