// One snapshot per stack, to catch drift; the targeted tests beside it say what matters. Asset hashes are
// normalized, so a snapshot changes when the infrastructure changes, not when Lambda code does.
// After an intended change: `npx vitest run test/infra/snapshots.test.ts -u`, and read the diff.
import { afterAll, describe, expect, it } from 'vitest';
import { defaultDeployment } from './synth.ts';

const synth = defaultDeployment();
afterAll(() => synth.cleanup());

/** Replaces content hashes (asset keys, CDK's hash-derived custom ids) by a placeholder. */
function normalizeAssets(template: unknown): unknown {
  return JSON.parse(JSON.stringify(template), (_key, value: unknown) =>
    typeof value === 'string' ? value.replace(/[0-9a-f]{64}/g, '[asset hash]') : value,
  );
}

describe('stack snapshots', () => {
  it.each(synth.deployment.ordered.map((s) => [s.stackName]))('%s', (stackName) => {
    expect(normalizeAssets(synth.template(stackName).toJSON())).toMatchSnapshot();
  });
});
