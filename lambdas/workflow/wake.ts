// Waking waiting workflow steps (lambdas/aws/waiters.ts). A released slot answers the oldest migrations queued at
// that cache node, as many as it has free slots (all of them when it stops taking work); an ended or finished upload answers every migration awaiting
// its chunks. Tokens that are no longer open (a cancelled or retried wait) are dropped and skipped.
import { taskSucceeded } from '../aws/callbacks.ts';
import type { Uses } from '../aws/deps.ts';
import { slotTopic, uploadTopic } from '../aws/waiters.ts';

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
