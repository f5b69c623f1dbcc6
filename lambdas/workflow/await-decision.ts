// A callback step: the migration waits (AWAITING_DECISION) for an admin to accept or reject the suggested
// destination; the API sends the token back with the answer.
import { task } from './task.ts';

export const handler = task(
  async (deps, event: { migrationId: string; taskToken: string }): Promise<void> => {
    await deps.migrations.update(
      event.migrationId,
      { set: [[['decisionToken'], event.taskToken]] },
      { expectStatus: ['AWAITING_DECISION'] },
    );
  },
);
