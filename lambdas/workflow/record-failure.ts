// Catch path. With a dataCenterId: one destination leg failed (the others go on). Without: the migration
// failed; give back every slot and record the cause.
import { MigrationTerminatedError } from '../aws/migration-store.ts';
import { TASK_FUNCTIONS } from '../functions.ts';
import { causeMessage, finish } from './lifecycle.ts';
import { task } from './task.ts';

export interface RecordFailureEvent {
  readonly migrationId: string;
  readonly dataCenterId?: string;
  readonly error?: { readonly Error?: string; readonly Cause?: string };
}

export const handler = task(
  TASK_FUNCTIONS.recordFailure,
  async (deps, event: RecordFailureEvent): Promise<{ status: string }> => {
    const m = await deps.migrations.require(event.migrationId);
    const code = event.error?.Error ?? 'Unknown';
    const message = causeMessage(event.error?.Cause);
    if (event.dataCenterId) {
      try {
        await deps.migrations.update(
          m.id,
          {
            set: [
              [['legs', event.dataCenterId, 'status'], 'FAILED'],
              [['legs', event.dataCenterId, 'error'], `${code}: ${message}`],
            ],
          },
          { history: { event: 'destination-failed', message: `${event.dataCenterId}: ${code}: ${message}` } },
        );
      } catch (err) {
        if (!(err instanceof MigrationTerminatedError)) throw err;
      }
      return { status: 'LEG_FAILED' };
    }
    if (m.status === 'CANCELLED' || m.status === 'COMPLETED') return { status: m.status };
    await finish(deps, m, 'FAILED', `${code}: ${message}`, { code, message });
    return { status: 'FAILED' };
  },
);
