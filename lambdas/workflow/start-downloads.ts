// Every destination cache node now holds the image: hand over to the destination agents (status DOWNLOADING).
// A local destination (the source's own data center) gets a handover instead of a download.

import { TASK_FUNCTIONS } from '../functions.ts';
import { task } from './task.ts';

export interface StartDownloadsOutput {
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
      legs: m.destinations.map((d) => ({
        dataCenterId: d,
        done: !open.includes(d),
        action: m.legs[d]?.local ? 'handover' : 'download',
      })),
    };
  },
);
