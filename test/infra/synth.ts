// Synthesizes the deployment the way `cdk synth` does (cdk.json context, the real topology), once per test file.
// Bundling is skipped with CDK's own switch (context `aws:cdk:bundling-stacks` = []): assets then point at the
// source tree instead of an esbuild bundle, which keeps the suite fast. bundle.test.ts bundles for real.
// CDK's built-in CloudFormation template validation costs ~9 s per process; it runs where a test asks for it
// (nag.test.ts), as it does in every `cdk synth`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildDeployment, type DeploymentStacks } from '../../lib/app.ts';
import { deploymentSettings } from '../../lib/settings.ts';

export const CDK_JSON = fileURLToPath(new URL('../../cdk.json', import.meta.url));

export function cdkJsonContext(): Record<string, unknown> {
  return (JSON.parse(readFileSync(CDK_JSON, 'utf8')) as { context: Record<string, unknown> }).context;
}

export const SKIP_BUNDLING = { 'aws:cdk:bundling-stacks': [] } as const;

export interface Synthesized {
  readonly app: App;
  readonly deployment: DeploymentStacks;
  readonly outdir: string;
  /** Context the app asked for and did not have (lookups): must stay empty for offline synthesis. */
  readonly missingContext: readonly unknown[];
  template(stackName: string): Template;
  cleanup(): void;
}

/** A fresh app from cdk.json context plus `context` overrides, synthesized (cdk-nag runs unless `nag: false`). */
export function synthesize(
  context: Record<string, unknown> = {},
  options: { readonly nag?: boolean; readonly account?: string; readonly cfnValidation?: boolean } = {},
): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'vmmig-cdk-'));
  const app = new App({ outdir, context: { ...cdkJsonContext(), ...SKIP_BUNDLING, ...context } });
  const deployment = buildDeployment(
    app,
    deploymentSettings((key) => app.node.tryGetContext(key)),
    options,
  );
  const previous = process.env['CDK_VALIDATION'];
  process.env['CDK_VALIDATION'] = options.cfnValidation ? 'true' : 'false';
  let assembly: ReturnType<App['synth']>;
  try {
    assembly = app.synth();
  } finally {
    if (previous === undefined) delete process.env['CDK_VALIDATION'];
    else process.env['CDK_VALIDATION'] = previous;
  }
  const templates = new Map<string, Template>();
  return {
    app,
    deployment,
    outdir,
    missingContext: assembly.manifest.missing ?? [],
    template(stackName) {
      let t = templates.get(stackName);
      if (!t) {
        const stack = deployment.ordered.find((s) => s.stackName === stackName);
        if (!stack) throw new Error(`no stack ${stackName}`);
        t = Template.fromStack(stack);
        templates.set(stackName, t);
      }
      return t;
    },
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

let shared: Synthesized | undefined;

/** The default deployment, synthesized once per test file. */
export function defaultDeployment(options: { readonly cfnValidation?: boolean } = {}): Synthesized {
  shared ??= synthesize({}, options);
  return shared;
}

/** Resources of one type in a template, by logical id. */
export function resourcesOf(
  template: Template,
  type: string,
): Record<string, { Properties: Record<string, unknown> }> {
  return template.findResources(type) as Record<string, { Properties: Record<string, unknown> }>;
}
