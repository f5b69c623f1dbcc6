// A callback step (.waitForTaskToken) for a migration whose missing chunks other migrations are uploading: it
// leaves a waiter on each uploader, and the step ends when one of them finishes its upload or ends
// (lambdas/workflow/wake.ts), or after the state's timeout; CheckShared then looks again. A wait costs no state
// transitions. What changed between CheckShared and here is not missed: the status is read again after the waiters
// are in place.
import { taskSucceeded } from '../aws/callbacks.ts';
import { uploadTopic } from '../aws/waiters.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { sharedStatus } from './check-shared.ts';
import { task } from './task.ts';

export interface AwaitSharedEvent {
  readonly migrationId: string;
  readonly taskToken: string;
}

export const handler = task(
  TASK_FUNCTIONS.awaitShared,
  async (deps, event: AwaitSharedEvent): Promise<void> => {
    const m = await deps.migrations.require(event.migrationId);
    const before = await sharedStatus(deps, m);
    await Promise.all(
      before.uploaders.map((uploader) =>
        deps.waiters.add({
          topic: uploadTopic(uploader),
          order: `${m.id}#a${m.attempt}`,
          migrationId: m.id,
          taskToken: event.taskToken,
        }),
      ),
    );
    const now = before.status === 'waiting' ? await sharedStatus(deps, m) : before;
    if (now.status !== 'waiting') await taskSucceeded(deps.sfn, event.taskToken, { woken: now.status });
  },
);
