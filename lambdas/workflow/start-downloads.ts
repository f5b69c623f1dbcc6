// Every destination cache node now holds the image: hand over to the destination agents (status DOWNLOADING).
// A local destination (the source's own data center) gets a handover instead of a download.
import { task } from './task.ts';

export interface StartDownloadsOutput {
  readonly legs: {
    readonly dataCenterId: string;
    readonly done: boolean;
    readonly action: 'download' | 'handover';
  }[];
}

export const handler = task(async (deps, event: { migrationId: string }): Promise<StartDownloadsOutput> => {
  const m = await deps.migrations.require(event.migrationId);
  const open = m.destinations.filter(
    (d) => m.legs[d]?.status !== 'COMPLETED' && m.legs[d]?.status !== 'FAILED',
  );
  await deps.migrations.update(
    m.id,
    {
      status: 'DOWNLOADING',
      set: open.map((d) => [['legs', d, 'status'], 'DOWNLOADING'] as const),
    },
    {
      history: {
        event: 'downloading',
        message: `destinations may download: ${open.join(', ') || 'none left'}`,
      },
    },
  );
  return {
    legs: m.destinations.map((d) => ({
      dataCenterId: d,
      done: !open.includes(d),
      action: m.legs[d]?.local ? 'handover' : 'download',
    })),
  };
});
