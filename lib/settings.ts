// Deployment settings: the topology (cdk.json context `vmmig:topology`) plus the optional `vmmig:*` context keys
// that tune the AWS deployment, validated at synth time with errors that name the key.
import { z } from 'zod';
import {
  formatIssues,
  parseTopology,
  TOPOLOGY_CONTEXT_KEY,
  type Topology,
  TopologyError,
} from '../protocol/topology.ts';

/** The context keys this app reads besides the topology; docs/deploy.md documents each. */
export const CONTEXT = {
  name: 'vmmig:name',
  account: 'vmmig:account',
  adminPrincipalArns: 'vmmig:adminPrincipalArns',
  alarmEmail: 'vmmig:alarmEmail',
  edgeDomain: 'vmmig:edgeDomain',
  edgeKeyGeneration: 'vmmig:edgeKeyGeneration',
  rolesAnywhereTrustAnchorArn: 'vmmig:rolesAnywhereTrustAnchorArn',
  logRetentionDays: 'vmmig:logRetentionDays',
  apiThrottle: 'vmmig:apiThrottle',
} as const;

// CloudWatch Logs accepts only these retention periods.
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 3653];

const settingsSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/, 'must be 2-12 characters of a-z, 0-9 and inner hyphens')
    .default('vmmig'),
  account: z
    .string()
    .regex(/^\d{12}$/, 'must be a 12-digit AWS account id')
    .optional(),
  adminPrincipalArns: z
    .array(z.string().regex(/^arn:aws[\w-]*:(iam|sts)::\d{12}:.+$/, 'must be an IAM role or user ARN'))
    .default([]),
  alarmEmail: z.email().optional(),
  edgeDomain: z
    .strictObject({
      domainName: z.string().regex(/^[a-z0-9.-]+\.[a-z]{2,}$/, 'must be a DNS name'),
      certificateArn: z
        .string()
        .regex(
          /^arn:aws[\w-]*:acm:us-east-1:\d{12}:certificate\/.+$/,
          'must be an ACM certificate in us-east-1',
        ),
    })
    .optional(),
  edgeKeyGeneration: z.int().min(1).default(1),
  rolesAnywhereTrustAnchorArn: z
    .string()
    .regex(/^arn:aws[\w-]*:rolesanywhere:[a-z0-9-]+:\d{12}:trust-anchor\/.+$/, 'must be a trust anchor ARN')
    .optional(),
  logRetentionDays: z
    .int()
    .refine((d) => RETENTION_DAYS.includes(d), `must be one of ${RETENTION_DAYS.join(', ')}`)
    .default(30),
  apiThrottle: z
    .strictObject({ rateLimit: z.number().positive(), burstLimit: z.int().positive() })
    .default({ rateLimit: 100, burstLimit: 200 }),
});

export type DeploymentOptions = z.infer<typeof settingsSchema>;

export interface DeploymentSettings extends DeploymentOptions {
  readonly topology: Topology;
}

/** Reads the deployment settings from a context lookup (`app.node.tryGetContext`). */
export function deploymentSettings(context: (key: string) => unknown): DeploymentSettings {
  const topology = parseTopology(context(TOPOLOGY_CONTEXT_KEY), `context "${TOPOLOGY_CONTEXT_KEY}"`);
  const raw: Record<string, unknown> = {};
  for (const [field, key] of Object.entries(CONTEXT)) {
    const value = context(key);
    // `cdk -c key=value` passes text: numbers, lists and objects arrive as JSON strings.
    if (value !== undefined)
      raw[field] = typeof value === 'string' && JSON_FIELDS.has(field) ? parseJson(value) : value;
  }
  const result = settingsSchema.safeParse(raw);
  if (!result.success) {
    const lines = formatIssues(result.error.issues, 'context').replace(
      /^context\.(\w+)/gm,
      (_, field: string) => `context "${CONTEXT[field as keyof typeof CONTEXT] ?? field}"`,
    );
    throw new TopologyError(`invalid deployment settings:\n${lines}`);
  }
  return { ...result.data, topology };
}

const JSON_FIELDS = new Set([
  'adminPrincipalArns',
  'edgeDomain',
  'edgeKeyGeneration',
  'logRetentionDays',
  'apiThrottle',
]);

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}
