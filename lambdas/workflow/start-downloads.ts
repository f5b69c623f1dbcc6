// Every destination cache node now holds the image: hand over to the destination agents (status DOWNLOADING).
// A local destination (the source's own data center) gets a handover instead of a download. Unless chunks were
// found lost while replicating (lost-chunks.ts): then the source uploads them again first (`reupload`).

import { TASK_FUNCTIONS } from '../functions.ts';
import { startHealRound } from './lost-chunks.ts';
import { task } from './task.ts';

export interface StartDownloadsOutput {
  /** Chunks were lost: back to CheckCache, which has the source upload them again. */
  readonly reupload: boolean;
  readonly legs: {
    readonly dataCenterId: string;
    readonly done: boolean;
    readonly action: 'download' | 'handover';
  }[];
}

export const handler = task(
  TASK_FUNCTIONS.startDownloads,
  async (deps, event: { migrationId: string }): Promise<StartDownloadsOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    if (await startHealRound(deps, m)) return { reupload: true, legs: [] };
    const open = m.destinations.filter(
      (d) => m.legs[d]?.status !== 'COMPLETED' && m.legs[d]?.status !== 'FAILED',
    );
    await deps.migrations.update(
      m.id,
      { status: 'DOWNLOADING' },
      {
        history: {
          event: 'downloading',
          message: `destinations may download: ${open.join(', ') || 'none left'}`,
        },
      },
    );
    // One guarded write per destination: a destination that completed meanwhile is never moved back.
    for (const d of open) {
      await deps.migrations
        .update(
          m.id,
          { set: [[['legs', d, 'status'], 'DOWNLOADING']] },
          { expectNot: [[['legs', d, 'status'], 'COMPLETED']] },
        )
        .catch((err: Error) => {
          if (err.name !== 'AppError') throw err;
        });
    }
    return {
      reupload: false,
      legs: m.destinations.map((d) => ({
        dataCenterId: d,
        done: !open.includes(d),
        action: m.legs[d]?.local ? 'handover' : 'download',
      })),
    };
  },
);
