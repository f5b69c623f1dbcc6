// The state the API suites aim at: a migration waiting for its destination's download, a batch and a backup
// policy, all from dc-gz to dc-osa.
import { randomUUID } from 'node:crypto';
import { createBatch } from '../../../protocol/api/batches.ts';
import { putPolicy } from '../../../protocol/api/policies.ts';
import type { TestCloud } from '../../support/local-cloud.ts';
import { migrationAt, waitForWork } from './agent-driver.ts';
import type { Fixtures } from './baselines.ts';

export async function createFixtures(t: TestCloud): Promise<Fixtures> {
  const driven = await migrationAt(t, 'download');
  const batch = await t.admin.call<{ id: string; migrations: { id: string }[] }>(createBatch, {
    headers: { 'idempotency-key': randomUUID() },
    json: {
      sourceDataCenterId: driven.from,
      destinations: [{ dataCenterId: driven.to }],
      vms: [{ vmId: 'vm-batch-1', hostId: 'h1', imageId: 'batch-1.img' }],
      mode: 'backup',
    },
  });
  // Settled: its migration waits for the manifest, so nothing moves while a suite compares snapshots.
  for (const m of batch.body.migrations) await waitForWork(t, driven.from, m.id, 'manifest');
  const policyId = 'chaos-policy';
  await t.admin.call(putPolicy, {
    params: { policyId },
    json: {
      vmId: 'vm-p',
      hostId: 'h',
      imageId: 'p.img',
      sourceDataCenterId: driven.from,
      destinations: [{ dataCenterId: driven.to }],
      intervalMinutes: 60,
      firstRunAt: new Date(Date.now() + 30 * 86_400_000).toISOString(), // at most a year ahead
      enabled: false,
    },
  });
  return {
    migrationId: driven.migration.id,
    from: driven.from,
    to: driven.to,
    chunkSha256: driven.image.manifest.chunks[0]?.sha256 as string,
    imageSha256: driven.image.manifest.sha256,
    imageId: driven.migration.imageId,
    batchId: batch.body.id,
    policyId,
  };
}

/** Every id that exists in the fixtures and the topology. */
export function knownIds(t: TestCloud, f: Fixtures): Set<string> {
  return new Set([
    f.migrationId,
    f.batchId,
    f.policyId,
    'hkg',
    'nrt',
    'sin',
    'dc-gz',
    'dc-sh',
    'dc-osa',
    'dc-jkt',
    t.cloud.tokens.adminToken,
  ]);
}
