// A callback step: the migration waits (AWAITING_DECISION) for an admin to accept or reject the destination
// Admit suggested; the API sends the token back with the answer. Status and token are written together, so a
// client that sees AWAITING_DECISION can answer at once.

import { TASK_FUNCTIONS } from '../functions.ts';
import { task } from './task.ts';

export const handler = task(
  TASK_FUNCTIONS.awaitDecision,
  async (deps, event: { migrationId: string; taskToken: string }): Promise<void> => {
    const m = await deps.migrations.require(event.migrationId);
    const d = m.decision;
    await deps.migrations.update(
      m.id,
      { status: 'AWAITING_DECISION', set: [[['decisionToken'], event.taskToken]] },
      // A restarted execution asks again for the same decision: record it once.
      d && m.status !== 'AWAITING_DECISION'
        ? {
            history: {
              event: 'suggested',
              message: `suggest ${d.suggestedDataCenterId} instead of ${d.congestedDataCenterId}: ${d.reason}`,
            },
          }
        : {},
    );
  },
);
