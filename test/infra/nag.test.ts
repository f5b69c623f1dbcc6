// cdk-nag AwsSolutions: no unacknowledged finding in any stack, and every acknowledgement gives a reason and still
// matches a finding (a stale acknowledgement would hide the next real one).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultDeployment } from './synth.ts';

// With CloudFormation's built-in template validation too, as `cdk synth` runs it (errors fail synthesis:
// cdk.json sets @aws-cdk/core:validateAgainstDefaultRules).
const synth = defaultDeployment({ cfnValidation: true });
afterAll(() => synth.cleanup());

interface Finding {
  readonly rule: string;
  readonly path: string;
}

function findings(options: { readonly ignoreAcknowledgements: boolean }): Finding[] {
  const pack = new AwsSolutionsChecks(synth.app);
  // cdk-nag keeps isAcknowledged private; replacing it on this instance lists every finding, acknowledged or not.
  if (options.ignoreAcknowledgements) Object.defineProperty(pack, 'isAcknowledged', { value: () => false });
  const report = pack.validateScope(synth.app);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => ({ rule: v.ruleName, path: r.constructPath ?? '?' })),
  );
}

interface Acknowledgement {
  readonly rule: string;
  readonly reason: string;
  readonly path: string;
}

function acknowledgements(root: IConstruct): Acknowledgement[] {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({
          rule: id.replace(/^annotation::/i, ''),
          reason,
          path: c.node.path,
        })),
      ),
  );
}

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding', () => {
    const open = findings({ ignoreAcknowledgements: false }).map((f) => `${f.rule} at ${f.path}`);
    expect(open).toEqual([]);
  });

  it('has a reason on every acknowledgement', () => {
    const acks = acknowledgements(synth.app);
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      expect(ack.reason.length, `${ack.rule} at ${ack.path}`).toBeGreaterThanOrEqual(60);
    }
  });

  it('leaves nothing in the validation report (cdk-nag and CloudFormation template validation)', () => {
    const report = JSON.parse(readFileSync(join(synth.outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: { pluginName: string; violations: unknown[] }[];
    };
    expect(
      report.pluginReports.map((r) => `${r.pluginName}: ${JSON.stringify(r.violations).slice(0, 500)}`),
    ).toEqual([]);
  });

  it('acknowledges only findings that exist', () => {
    const all = findings({ ignoreAcknowledgements: true });
    const stale = acknowledgements(synth.app).filter(
      (ack) =>
        !all.some((f) => f.rule === ack.rule && (f.path === ack.path || f.path.startsWith(`${ack.path}/`))),
    );
    expect(stale.map((a) => `${a.rule} at ${a.path}`)).toEqual([]);
  });
});
