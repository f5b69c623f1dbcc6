// Chunks the content index placed where they are not stored (deleted behind the system's back: an operator's
// cleanup, a lifecycle rule, a lost region). Whoever finds one drops the entry at once; one no other cache node
// holds is counted on the migration as lost, and before downloads start the workflow has the source upload the
// lost chunks again (CheckCache sees them as held nowhere): a lost object costs a re-upload, never a migration.
// Rounds are bounded, so a node that keeps losing what it is given fails the migration instead of looping.
import type { Uses } from '../aws/deps.ts';
import { TaskFailure } from './task.ts';

/** Re-upload rounds an attempt may run before it fails with ChunksLost. */
export const MAX_HEAL_ROUNDS = 3;

/** Counts chunks found lost in this round (plus index entries dropped) on the migration, with a history line. */
export async function recordLost(
  deps: Uses<'migrations'>,
  migrationId: string,
  lost: number,
  message: string,
  healed = 0,
): Promise<void> {
  if (lost === 0 && healed === 0) return;
  await deps.migrations.update(
    migrationId,
    {
      increment: [
        ...(lost > 0 ? [[['chunksLost'], lost] as const] : []),
        ...(healed > 0 ? [[['chunksHealed'], healed] as const] : []),
      ],
    },
    { history: { event: lost > 0 ? 'chunks-lost' : 'index-healed', message } },
  );
}

/**
 * Before downloads: were chunks lost in the round that just ended? Then the next round starts (the counter resets
 * and the source uploads them again), unless the attempt has had its rounds.
 */
export async function startHealRound(
  deps: Uses<'migrations'>,
  m: { readonly id: string; readonly chunksLost?: number; readonly healRounds?: number },
): Promise<boolean> {
  const lost = m.chunksLost ?? 0;
  if (lost === 0) return false;
  const round = (m.healRounds ?? 0) + 1;
  if (round > MAX_HEAL_ROUNDS) {
    throw new TaskFailure(
      'ChunksLost',
      `${lost} chunks were lost from the cache nodes again after ${MAX_HEAL_ROUNDS} re-uploads: ` +
        'check what deletes objects from the cache node buckets, then retry',
    );
  }
  await deps.migrations.update(
    m.id,
    {
      set: [
        [['chunksLost'], 0],
        [['healRounds'], round],
      ],
    },
    {
      expect: [[['chunksLost'], lost]],
      history: {
        event: 'reupload',
        message: `${lost} lost chunks: the source uploads them again (round ${round} of ${MAX_HEAL_ROUNDS})`,
      },
    },
  );
  return true;
}
