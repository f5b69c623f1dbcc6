// `npm run iam:generate`: synthesizes the deployment of cdk.json (no bundling, no cdk-nag) and writes the IAM
// policies the local cloud enforces to local/iam/policies.json. test/infra/local-iam.test.ts fails when the file
// lags what CDK synthesizes.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { POLICIES_FILE, type SynthesizedPolicies } from '../local/iam/policies.ts';
import { buildDeployment } from './app.ts';
import { deploymentSettings } from './settings.ts';
import { synthesizedPolicies } from './synthesized-policies.ts';

const CDK_JSON = fileURLToPath(new URL('../cdk.json', import.meta.url));

/** The policies of the deployment cdk.json describes (plus `context` overrides). */
export function currentPolicies(context: Record<string, unknown> = {}): SynthesizedPolicies {
  const outdir = mkdtempSync(join(tmpdir(), 'vmmig-iam-'));
  try {
    const base = (JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { context: Record<string, unknown> }).context;
    const app = new App({ outdir, context: { ...base, 'aws:cdk:bundling-stacks': [], ...context } });
    const settings = deploymentSettings((key) => app.node.tryGetContext(key));
    const deployment = buildDeployment(app, settings, { nag: false });
    return synthesizedPolicies(
      deployment,
      (stack) => Template.fromStack(stack).toJSON() as never,
      settings.topology,
    );
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

export const render = (policies: SynthesizedPolicies) => `${JSON.stringify(policies, null, 2)}\n`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(POLICIES_FILE, render(currentPolicies()));
  console.log(`wrote ${fileURLToPath(POLICIES_FILE)}`);
}
