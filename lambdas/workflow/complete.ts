// The last step: COMPLETED when every destination completed (and, in mode migrate, the source agent has run
// its on-migrated hook), FAILED naming the destinations that did not (retry then re-runs only those). Slots
// are given back either way.

import { TASK_FUNCTIONS } from '../functions.ts';
import { finish } from './lifecycle.ts';
import { task } from './task.ts';

export interface CompleteOutput {
  /** RELEASE: every destination has the VM; ask the source agent to release it, then run Complete again. */
  readonly status: 'COMPLETED' | 'FAILED' | 'RELEASE';
}

export const handler = task(
  TASK_FUNCTIONS.complete,
  async (deps, event: { migrationId: string }): Promise<CompleteOutput> => {
    const m = await deps.migrations.require(event.migrationId);
    const failed = m.destinations.filter((d) => m.legs[d]?.status !== 'COMPLETED');
    if (failed.length === 0) {
      if (m.mode === 'migrate' && !m.sourceReleased) return { status: 'RELEASE' };
      const where = m.destinations.join(', ');
      await finish(
        deps,
        m,
        'COMPLETED',
        m.mode === 'backup' ? `backup delivered to ${where}` : `VM migrated to ${where}`,
      );
      return { status: 'COMPLETED' };
    }
    const reasons = failed.map((d) => `${d}: ${m.legs[d]?.error ?? 'did not complete'}`).join('; ');
    await finish(deps, m, 'FAILED', `destinations failed: ${reasons}`, {
      code: 'DestinationsFailed',
      message: `destinations failed: ${reasons}`,
    });
    return { status: 'FAILED' };
  },
);
