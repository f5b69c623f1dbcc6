// The last step: COMPLETED when every destination completed, FAILED naming the destinations that did not
// (retry then re-runs only those). Slots are given back either way.
import { finish } from './lifecycle.ts';
import { task } from './task.ts';

export const handler = task(
  async (deps, event: { migrationId: string }): Promise<{ status: 'COMPLETED' | 'FAILED' }> => {
    const m = await deps.migrations.require(event.migrationId);
    const failed = m.destinations.filter((d) => m.legs[d]?.status !== 'COMPLETED');
    if (failed.length === 0) {
      await finish(deps, m, 'COMPLETED', `image delivered to ${m.destinations.join(', ')}`);
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
