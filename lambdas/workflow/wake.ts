// Waking waiting workflow steps (lambdas/aws/waiters.ts). A released slot answers the oldest migrations queued at
// that cache node, as many as it has free slots (all of them when it stops taking work); an ended or finished upload answers every migration awaiting
// its chunks. Tokens that are no longer open (a cancelled or retried wait) are dropped and skipped.
import { taskSucceeded } from '../aws/callbacks.ts';
import type { Uses } from '../aws/deps.ts';
import { slotTopic, spaceTopic, uploadTopic } from '../aws/waiters.ts';
import { spaceFor } from '../domain/cache-space.ts';

const PAGE = 25;

/**
 * Answers the oldest waiters for a slot at `cacheNodeId`, as many as the node has free slots; every waiter when the
 * node stopped taking work (Admit then sends each round it).
 */
export async function wakeSlotWaiters(
  deps: Uses<'waiters' | 'slots' | 'sfn'>,
  cacheNodeId: string,
): Promise<number> {
  const free = await deps.slots.wakeable(cacheNodeId);
  let woken = 0;
  while (woken < free) {
    const waiters = await deps.waiters.oldest(slotTopic(cacheNodeId), PAGE);
    if (waiters.length === 0) break;
    for (const waiter of waiters) {
      if (woken >= free) break;
      if ((await taskSucceeded(deps.sfn, waiter.taskToken, { woken: 'slot' })) === 'sent') woken++;
      await deps.waiters.remove(waiter);
    }
  }
  return woken;
}

/** Answers every migration awaiting chunks that `uploaderId` was uploading (it finished its upload, or ended). */
export async function wakeUploadWaiters(deps: Uses<'waiters' | 'sfn'>, uploaderId: string): Promise<number> {
  let woken = 0;
  for (;;) {
    const waiters = await deps.waiters.oldest(uploadTopic(uploaderId), PAGE);
    if (waiters.length === 0) return woken;
    for (const waiter of waiters) {
      if ((await taskSucceeded(deps.sfn, waiter.taskToken, { woken: 'upload' })) === 'sent') woken++;
      await deps.waiters.remove(waiter);
    }
  }
}

/**
 * Answers every migration queued for space at `cacheNodeId` (room was made: the collector freed bytes, the budget
 * grew, a reservation was given back). Each looks again in Admit; those that still do not fit queue again. Wakes
 * happen on those events only, never on a timer, so a long wait costs no history.
 */
export async function wakeSpaceWaiters(deps: Uses<'waiters' | 'sfn'>, cacheNodeId: string): Promise<number> {
  let woken = 0;
  // A woken migration that still does not fit queues again under the same key: wake each once per call.
  const answered = new Set<string>();
  for (;;) {
    const waiters = (await deps.waiters.oldest(spaceTopic(cacheNodeId), PAGE)).filter(
      (w) => !answered.has(w.migrationId),
    );
    if (waiters.length === 0) return woken;
    for (const waiter of waiters) {
      answered.add(waiter.migrationId);
      if ((await taskSucceeded(deps.sfn, waiter.taskToken, { woken: 'space' })) === 'sent') woken++;
      await deps.waiters.remove(waiter);
    }
  }
}

/**
 * The safety net for a lost wake-up (a crash between making room and waking): answers the migrations queued for
 * space at `cacheNodeId` that fit now, and only those, so that running it on every collector pass costs a waiting
 * migration nothing until it can go.
 */
export async function wakeSpaceWaitersThatFit(
  deps: Uses<'waiters' | 'sfn' | 'migrations' | 'slots' | 'contentIndex'>,
  cacheNodeId: string,
): Promise<number> {
  const waiters = await deps.waiters.oldest(spaceTopic(cacheNodeId), PAGE);
  if (waiters.length === 0) return 0;
  const [node, usage] = await Promise.all([
    deps.slots.spaceItem(cacheNodeId),
    deps.contentIndex.usage(cacheNodeId),
  ]);
  let woken = 0;
  for (const waiter of waiters) {
    const m = await deps.migrations.get(waiter.migrationId);
    // Gone, or no longer queued for space: its waiter is answered (Admit decides again).
    const stale = m?.queuedFor !== 'space';
    const fits = stale || spaceFor({ ...node, bytesHeld: usage.bytesHeld }, m.id, m.queuedNeed ?? 0).fits;
    if (!fits) continue;
    if ((await taskSucceeded(deps.sfn, waiter.taskToken, { woken: 'space' })) === 'sent') woken++;
    await deps.waiters.remove(waiter);
  }
  return woken;
}
