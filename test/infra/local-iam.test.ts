// The local cloud enforces the IAM policies CDK synthesizes, from local/iam/policies.json: that file must be exactly
// what the deployment synthesizes now, or the local cloud would enforce yesterday's grants.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_FUNCTIONS } from '../../lambdas/functions.ts';
import { currentPolicies, render } from '../../lib/generate-local-policies.ts';
import { COLLECTOR_STATE_MACHINE, POLICIES_FILE, stateMachinePrincipal } from '../../local/iam/policies.ts';

describe('local/iam/policies.json', () => {
  const synthesized = currentPolicies();

  it('equals the policies CDK synthesizes for the deployment of cdk.json (else: npm run iam:generate)', () => {
    expect(readFileSync(POLICIES_FILE, 'utf8'), 'run `npm run iam:generate`').toBe(render(synthesized));
  });

  it('has a policy for every declared function, both state machines, the admin and the agents', () => {
    expect(Object.keys(synthesized.principals).sort()).toEqual(
      [
        ...ALL_FUNCTIONS.map((f) => `function/${f.name}`),
        'admin',
        'agent',
        'stateMachine',
        stateMachinePrincipal(COLLECTOR_STATE_MACHINE),
      ].sort(),
    );
  });
});
