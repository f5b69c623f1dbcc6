// The deployment topology (cache nodes, data centers, replication pairs): one source, cdk.json context
// `vmmig:topology`, read by the CDK app and by the local cloud, validated here.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

export const TOPOLOGY_CONTEXT_KEY = 'vmmig:topology';

export const nodeIdSchema = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/, 'must be 1-32 characters of a-z, 0-9 and inner hyphens');

export const awsRegionSchema = z
  .string()
  .regex(/^[a-z]{2}(?:-gov)?-[a-z]+-\d$/, 'must be an AWS region name such as ap-northeast-1');

export const locationSchema = z.strictObject({
  lat: z.number().min(-90).max(90),
  lon: z.number().min(-180).max(180),
});
export type Location = z.infer<typeof locationSchema>;

/** The smallest storage budget a cache node takes: less holds hardly a chunk, and is most likely a unit mistake. */
export const MIN_BUDGET_BYTES = 1024 ** 2;

export const cacheNodeConfigSchema = z.strictObject({
  id: nodeIdSchema,
  name: z.string().min(1).max(100),
  region: awsRegionSchema,
  location: locationSchema,
  capacity: z.int().min(1).max(10_000),
  /** Storage budget in bytes (draft §2 "cache space"); absent: unlimited. */
  budgetBytes: z.int().min(MIN_BUDGET_BYTES).max(Number.MAX_SAFE_INTEGER).optional(),
});
export type CacheNodeConfig = z.infer<typeof cacheNodeConfigSchema>;

export const dataCenterConfigSchema = z.strictObject({
  id: nodeIdSchema,
  name: z.string().min(1).max(100),
  address: z.string().min(1).max(255),
  location: locationSchema,
  homeCacheNode: nodeIdSchema.optional(),
});
export type DataCenterConfig = z.infer<typeof dataCenterConfigSchema>;

export const topologySchema = z
  .strictObject({
    homeRegion: awsRegionSchema,
    cacheNodes: z.array(cacheNodeConfigSchema).min(1),
    dataCenters: z.array(dataCenterConfigSchema).min(1),
    replicationPairs: z.array(z.strictObject({ from: nodeIdSchema, to: nodeIdSchema })).default([]),
  })
  .superRefine((t, ctx) => {
    const nodeIds = new Set<string>();
    const regions = new Map<string, string>();
    t.cacheNodes.forEach((n, i) => {
      if (nodeIds.has(n.id))
        ctx.addIssue({
          code: 'custom',
          path: ['cacheNodes', i, 'id'],
          message: `duplicate cache node id "${n.id}"`,
        });
      nodeIds.add(n.id);
      const other = regions.get(n.region);
      if (other !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['cacheNodes', i, 'region'],
          message: `region ${n.region} already holds cache node "${other}": one cache node per region`,
        });
      }
      regions.set(n.region, n.id);
    });
    const dcIds = new Set<string>();
    t.dataCenters.forEach((d, i) => {
      if (dcIds.has(d.id))
        ctx.addIssue({
          code: 'custom',
          path: ['dataCenters', i, 'id'],
          message: `duplicate data center id "${d.id}"`,
        });
      dcIds.add(d.id);
      if (d.homeCacheNode !== undefined && !nodeIds.has(d.homeCacheNode)) {
        ctx.addIssue({
          code: 'custom',
          path: ['dataCenters', i, 'homeCacheNode'],
          message: `unknown cache node "${d.homeCacheNode}"`,
        });
      }
    });
    t.replicationPairs.forEach((p, i) => {
      for (const end of ['from', 'to'] as const) {
        if (!nodeIds.has(p[end])) {
          ctx.addIssue({
            code: 'custom',
            path: ['replicationPairs', i, end],
            message: `unknown cache node "${p[end]}"`,
          });
        }
      }
      if (p.from === p.to)
        ctx.addIssue({
          code: 'custom',
          path: ['replicationPairs', i, 'to'],
          message: 'must differ from "from"',
        });
    });
  });
export type Topology = z.infer<typeof topologySchema>;

/** Formats zod issues as `path: reason` lines, the path written the way a reader finds it in the file. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], root: string): string {
  return issues
    .map((issue) => {
      const path = issue.path.reduce<string>(
        (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : `${acc}.${String(seg)}`),
        root,
      );
      return `${path}: ${issue.message}`;
    })
    .join('\n');
}

export class TopologyError extends Error {
  override readonly name = 'TopologyError';
}

export function parseTopology(raw: unknown, source = 'topology'): Topology {
  const result = topologySchema.safeParse(raw);
  if (!result.success) {
    throw new TopologyError(
      `invalid topology in ${source}:\n${formatIssues(result.error.issues, 'topology')}`,
    );
  }
  return result.data;
}

/** Reads the topology from a cdk.json file (its context key `vmmig:topology`). */
export function loadTopology(cdkJsonPath: string): Topology {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cdkJsonPath, 'utf8'));
  } catch (err) {
    throw new TopologyError(`cannot read ${cdkJsonPath}: ${(err as Error).message}`);
  }
  const context = (json as { context?: Record<string, unknown> } | null)?.context;
  if (context?.[TOPOLOGY_CONTEXT_KEY] === undefined) {
    throw new TopologyError(`${cdkJsonPath} has no context."${TOPOLOGY_CONTEXT_KEY}"`);
  }
  return parseTopology(context[TOPOLOGY_CONTEXT_KEY], `${cdkJsonPath} context."${TOPOLOGY_CONTEXT_KEY}"`);
}
