// One valid request per route, aimed at fixtures the suites create: the fuzzers break it in one place at a time,
// the authorization matrix sends it as each principal.
import type { RawRequest } from './fuzz.ts';

export interface Fixtures {
  /** gz → osa, waiting for dc-osa to download. */
  readonly migrationId: string;
  readonly from: string;
  readonly to: string;
  /** A digest the migration uploads, and the image's digest. */
  readonly chunkSha256: string;
  readonly imageSha256: string;
  /** The migration's image id (in the source's image store). */
  readonly imageId: string;
  /** A batch gz → osa. */
  readonly batchId: string;
  /** A disabled backup policy gz → osa. */
  readonly policyId: string;
}

export type Baseline = Omit<RawRequest, 'method' | 'path' | 'token'>;

const DC_INPUT = { name: 'Fuzz DC', address: '10.9.9.9', location: { lat: 34.9, lon: 135.1 } };
const NODE_INPUT = {
  name: 'Hong Kong',
  region: 'ap-east-1',
  location: { lat: 22.32, lon: 114.17 },
  capacity: 8,
};
const SHA = 'ab'.repeat(32);

/** Keyed by `METHOD /path` as routeName() writes it. */
export function baselines(f: Fixtures): Record<string, Baseline> {
  const mig = { migrationId: f.migrationId };
  const dest = { migrationId: f.migrationId, dataCenterId: f.to };
  return {
    'GET /health': {},
    'GET /v1/data-centers': { query: { limit: '10' } },
    'GET /v1/data-centers/{dataCenterId}': { params: { dataCenterId: f.from } },
    'PUT /v1/data-centers/{dataCenterId}': { params: { dataCenterId: 'dc-fuzz' }, body: DC_INPUT },
    'DELETE /v1/data-centers/{dataCenterId}': { params: { dataCenterId: 'dc-fuzz' } },
    'GET /v1/cache-nodes': { query: { limit: '10' } },
    'GET /v1/cache-nodes/{cacheNodeId}': { params: { cacheNodeId: 'hkg' } },
    'PUT /v1/cache-nodes/{cacheNodeId}': { params: { cacheNodeId: 'hkg' }, body: NODE_INPUT },
    'PATCH /v1/cache-nodes/{cacheNodeId}': { params: { cacheNodeId: 'hkg' }, body: { capacity: 8 } },
    'DELETE /v1/cache-nodes/{cacheNodeId}': { params: { cacheNodeId: 'hkg' } },
    // Report only: a verify with repair would change what the fuzzers check stays unchanged.
    'POST /v1/cache-nodes/{cacheNodeId}/verify': {
      params: { cacheNodeId: 'hkg' },
      body: { repair: false, cursor: '00'.repeat(32), limit: 100 },
    },
    'GET /v1/content-map': { query: { migrationId: f.migrationId, limit: '10' } },
    'GET /v1/location-map': { query: { migrationId: f.migrationId, limit: '10' } },
    'POST /v1/migrations': {
      headers: { 'idempotency-key': 'fuzz-baseline' },
      body: {
        vmId: 'vm-fuzz',
        hostId: 'host-1',
        imageId: 'fuzz.img',
        sourceDataCenterId: f.from,
        destinations: [{ dataCenterId: f.to, format: 'raw' }],
        mode: 'backup',
        onCongestion: 'wait',
        queueTimeoutSeconds: 60,
        application: 'fuzz',
      },
    },
    'GET /v1/migrations': {
      query: { status: 'DOWNLOADING', dataCenterId: f.from, vmId: 'vm-x', limit: '5' },
    },
    'GET /v1/migrations/{migrationId}': { params: mig },
    'POST /v1/migrations/{migrationId}/cancel': { params: mig },
    'POST /v1/migrations/{migrationId}/retry': { params: mig, body: { destinations: [f.to] } },
    'POST /v1/migrations/{migrationId}/decision': { params: mig, body: { accept: true } },
    'POST /v1/batches': {
      headers: { 'idempotency-key': 'fuzz-batch-baseline' },
      body: {
        sourceDataCenterId: f.from,
        destinations: [{ dataCenterId: f.to }],
        vms: [{ vmId: 'vm-b1', hostId: 'h1', imageId: 'b1.img' }],
        mode: 'backup',
      },
    },
    'GET /v1/batches/{batchId}': { params: { batchId: f.batchId } },
    'POST /v1/estimates': {
      body: {
        destinationDataCenterId: f.to,
        sourceDataCenterId: f.from,
        chunks: [{ sha256: SHA, length: 1000 }],
      },
    },
    'GET /v1/backup-policies': { query: { limit: '10' } },
    'GET /v1/backup-policies/{policyId}': { params: { policyId: f.policyId } },
    'PUT /v1/backup-policies/{policyId}': {
      params: { policyId: f.policyId },
      body: {
        vmId: 'vm-p',
        hostId: 'h',
        imageId: 'p.img',
        sourceDataCenterId: f.from,
        destinations: [{ dataCenterId: f.to }],
        intervalMinutes: 60,
        firstRunAt: new Date(Date.now() + 30 * 86_400_000).toISOString(), // at most a year ahead
        enabled: false,
        onCongestion: 'wait',
        queueTimeoutSeconds: 60,
      },
    },
    'DELETE /v1/backup-policies/{policyId}': { params: { policyId: f.policyId } },
    'GET /v1/cache/settings': {},
    'PATCH /v1/cache/settings': {
      body: { graceSeconds: 3600, retentionDays: 30, highWater: 0.9, lowWater: 0.75 },
    },
    'GET /v1/pins': { query: { limit: '10' } },
    // The fixture's image has no completed migration: a well-formed request that pins nothing (404).
    'GET /v1/pins/{imageId}': { params: { imageId: f.imageId } },
    'PUT /v1/pins/{imageId}': { params: { imageId: f.imageId }, body: { cacheNodeIds: ['hkg', 'nrt'] } },
    'DELETE /v1/pins/{imageId}': { params: { imageId: f.imageId } },
    // A dry run: a real pass would change what the fuzzers check stays unchanged.
    'POST /v1/cache/gc': { body: { dryRun: true, cacheNodeIds: ['hkg'] } },
    'GET /v1/agent/work': { query: { dataCenterId: f.from, agentVersion: '1.0.0' } },
    'POST /v1/agent/work-queue': { query: { dataCenterId: f.from } },
    'POST /v1/migrations/{migrationId}/source/manifest-url': {
      params: mig,
      body: { sha256: SHA, size: 100 },
    },
    'POST /v1/migrations/{migrationId}/source/manifest': { params: mig, body: { sha256: SHA, size: 100 } },
    'GET /v1/migrations/{migrationId}/source/upload-plan': { params: mig, query: { limit: '10' } },
    'POST /v1/migrations/{migrationId}/source/pack-url': { params: mig, body: { sha256: SHA, size: 4096 } },
    // A pack never stored: read back, rejected, nothing indexed.
    'POST /v1/migrations/{migrationId}/source/packs': { params: mig, body: { packs: [SHA] } },
    'POST /v1/migrations/{migrationId}/source/complete': { params: mig },
    'POST /v1/migrations/{migrationId}/source/failed': { params: mig, body: { reason: 'disk gone' } },
    'POST /v1/migrations/{migrationId}/source/released': { params: mig, body: { hook: 'ran' } },
    'GET /v1/migrations/{migrationId}/destinations/{dataCenterId}/plan': {
      params: dest,
      query: { limit: '10' },
    },
    'POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/complete': {
      params: dest,
      body: { sha256: f.imageSha256, path: '/images/x.img', format: 'raw' },
    },
    'POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/failed': {
      params: dest,
      body: { reason: 'no space' },
    },
    'POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/repair': {
      params: dest,
      body: { sha256: f.chunkSha256 },
    },
    'POST /v1/migrations/{migrationId}/heartbeat': {
      params: mig,
      body: {
        role: 'destination',
        dataCenterId: f.to,
        phase: 'downloading',
        bytesDone: 0,
        chunksDone: 0,
        bytesTotal: 1,
      },
    },
  };
}

/** Body fields that name other entities: set to ids that exist nowhere, the request must be refused. */
export const REFERENCES: Readonly<Record<string, readonly (readonly (string | number)[])[]>> = {
  'PUT /v1/data-centers/{dataCenterId}': [['homeCacheNode']],
  'POST /v1/migrations': [['sourceDataCenterId'], ['destinations', 0, 'dataCenterId']],
  'POST /v1/batches': [['sourceDataCenterId'], ['destinations', 0, 'dataCenterId']],
  'POST /v1/estimates': [['destinationDataCenterId'], ['sourceDataCenterId']],
  'PUT /v1/backup-policies/{policyId}': [['sourceDataCenterId'], ['destinations', 0, 'dataCenterId']],
  'PUT /v1/pins/{imageId}': [['cacheNodeIds', 1]],
  'POST /v1/migrations/{migrationId}/retry': [['destinations', 0]],
  'POST /v1/migrations/{migrationId}/heartbeat': [['dataCenterId']],
  'POST /v1/cache/gc': [['cacheNodeIds', 0]],
};

/** Routes where a well-formed id that names nothing creates it (a PUT): their ids are fuzzed only malformed. */
export const CREATES_BY_ID = new Set([
  'PUT /v1/data-centers/{dataCenterId}',
  'PUT /v1/backup-policies/{policyId}',
]);
