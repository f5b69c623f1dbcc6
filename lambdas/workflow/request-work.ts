// A callback step (.waitForTaskToken): leaves a work item with the task token for the agent that must act —
// the source agent (manifest, upload, release) or one destination agent (download, or handover for a local
// destination). The API sends the token back when the agent reports; the step then completes.
import type { WorkItem } from '../../protocol/api/agent.ts';
import { taskSucceeded } from '../aws/callbacks.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { chunkingOf, earlierChunking } from './earlier-chunking.ts';
import { TaskFailure, task } from './task.ts';

export interface RequestWorkEvent {
  readonly migrationId: string;
  readonly action: WorkItem['action'];
  readonly dataCenterId?: string;
  readonly taskToken: string;
}

const MESSAGES: Record<WorkItem['action'], string> = {
  manifest: 'waiting for the source agent to chunk the image and send its manifest',
  upload: 'waiting for the source agent to upload the missing chunks',
  download: 'waiting for the destination agent to download and verify the image',
  handover: 'waiting for the agent to hand the image over locally (same data center)',
  release: 'every destination has the VM: waiting for the source agent to run its on-migrated hook',
};

export const handler = task(
  TASK_FUNCTIONS.requestWork,
  async (deps, event: RequestWorkEvent): Promise<void> => {
    const m = await deps.migrations.require(event.migrationId);
    const toDestination = event.action === 'download' || event.action === 'handover';
    const dataCenterId = toDestination ? event.dataCenterId : m.sourceDataCenterId;
    if (!dataCenterId || (toDestination && !m.destinations.includes(dataCenterId))) {
      throw new TaskFailure('BadTaskInput', `no destination ${event.dataCenterId} in migration ${m.id}`);
    }
    const leg = toDestination ? m.legs[dataCenterId] : undefined;
    // Already done (a re-run after a restart, or a report that raced this step): answer the step at once.
    const done =
      (toDestination && leg?.status === 'COMPLETED') ||
      (event.action === 'manifest' && m.image !== undefined) ||
      (event.action === 'release' && m.sourceReleased);
    if (done) {
      await taskSucceeded(deps.sfn, event.taskToken);
      return;
    }
    try {
      if (toDestination) {
        await deps.migrations.update(
          m.id,
          { set: [[['legs', dataCenterId, 'status'], 'DOWNLOADING']] },
          {
            // Never move a finished destination back.
            expectNot: [[['legs', dataCenterId, 'status'], 'COMPLETED']],
            history: {
              event: `awaiting-${event.action}`,
              message: `${dataCenterId}: ${MESSAGES[event.action]}`,
            },
          },
        );
      } else {
        // The manifest comes before admission (Admit needs it to know the space the image takes): PENDING still.
        await deps.migrations.update(m.id, event.action === 'upload' ? { status: 'UPLOADING' } : {}, {
          history: { event: `awaiting-${event.action}`, message: MESSAGES[event.action] },
        });
      }
    } catch (err) {
      // The destination completed between our read and this write: nothing left to wait for.
      if (toDestination && (await deps.migrations.require(m.id)).legs[dataCenterId]?.status === 'COMPLETED') {
        await taskSucceeded(deps.sfn, event.taskToken);
        return;
      }
      throw err;
    }
    const chunking =
      event.action === 'manifest'
        ? await earlierChunking(deps, m)
        : event.action === 'upload'
          ? await chunkingOf(deps, m.id)
          : undefined;
    await deps.migrations.putWork({
      migrationId: m.id,
      action: event.action,
      role: toDestination ? 'destination' : 'source',
      dataCenterId,
      vmId: m.vmId,
      hostId: m.hostId,
      imageId: m.imageId,
      ...(leg?.format ? { format: leg.format } : {}),
      ...(toDestination && m.overwrite ? { overwrite: true } : {}),
      ...(chunking ? { chunking } : {}),
      createdAt: new Date().toISOString(),
      taskToken: event.taskToken,
    });
    // The agent long-polls its queue: wake it (a lost wake-up costs at most its periodic look at the work).
    await deps.workQueues.wake(dataCenterId, { migrationId: m.id, action: event.action });
  },
);
