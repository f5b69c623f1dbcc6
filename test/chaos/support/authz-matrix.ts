// The authorization matrix of docs/api.md as data: every route × {admin, source agent, destination agent, agent
// of an unrelated data center}, with the status each must get (no token and a bad token are always 401). Allowed
// cells aim at states where the answer is harmless (a 409 or 400 from the handler still proves the request got
// past authorization); denied cells must change nothing.
import { expect } from 'vitest';
import { baselines, type Fixtures } from './baselines.ts';
import type { RawRequest, RawResponse } from './fuzz.ts';

export type Who = 'admin' | 'source' | 'destination' | 'other';

export interface AuthzFixtures extends Fixtures {
  /** gz → osa, waiting for the manifest. */
  readonly manifestMigrationId: string;
  /** gz → osa, waiting for the upload; one of its chunks. */
  readonly uploadMigrationId: string;
  readonly uploadChunkSha256: string;
  /** gz → osa, waiting for the manifest: the admin cancels it. */
  readonly cancelMigrationId: string;
}

export interface Row {
  readonly route: string;
  readonly req: Omit<RawRequest, 'method' | 'path' | 'token'>;
  readonly expect: Readonly<Record<Who, number>>;
  /** What an allowed principal may see in the answer. */
  readonly check?: (who: Who, res: RawResponse) => void;
}

const items = (res: RawResponse) => (res.json['items'] ?? []) as Record<string, unknown>[];
const ALL_OK = { admin: 200, source: 200, destination: 200, other: 200 } as const;
const ADMIN_ONLY = (admin: number) => ({ admin, source: 403, destination: 403, other: 403 });
/** Source-agent routes: the destination is in the migration (403), the unrelated agent must not learn it exists. */
const SOURCE_END = (ok: number) => ({ admin: ok, source: ok, destination: 403, other: 404 });
const DESTINATION_END = (ok: number) => ({ admin: ok, source: 403, destination: ok, other: 404 });
const DC_INPUT = { name: 'Authz DC', address: '10.8.8.8', location: { lat: 30, lon: 120 } };
/** A pack digest nothing stored. */
const UNSTORED_PACK = 'ef'.repeat(32);

export function matrix(f: AuthzFixtures): Row[] {
  const b = baselines(f);
  const req = (route: string) => b[route] ?? {};
  const mig = (migrationId: string) => ({ migrationId });
  return [
    {
      route: 'GET /v1/data-centers',
      req: req('GET /v1/data-centers'),
      expect: ALL_OK,
      check: (who, res) => {
        const ids = items(res).map((d) => d['id']);
        if (who === 'admin') expect(ids).toEqual(expect.arrayContaining(['dc-gz', 'dc-osa', 'dc-jkt']));
        else expect(ids).toEqual([{ source: 'dc-gz', destination: 'dc-osa', other: 'dc-jkt' }[who]]);
      },
    },
    {
      route: 'GET /v1/data-centers/{dataCenterId}',
      req: req('GET /v1/data-centers/{dataCenterId}'),
      expect: { admin: 200, source: 200, destination: 403, other: 403 },
    },
    {
      route: 'PUT /v1/data-centers/{dataCenterId}',
      req: { params: { dataCenterId: 'dc-authz' }, body: DC_INPUT },
      expect: ADMIN_ONLY(201),
    },
    {
      route: 'DELETE /v1/data-centers/{dataCenterId}',
      req: { params: { dataCenterId: 'dc-authz' } },
      expect: ADMIN_ONLY(204),
    },
    {
      route: 'GET /v1/cache-nodes',
      req: req('GET /v1/cache-nodes'),
      expect: ALL_OK,
      check: (who, res) => {
        // Which migrations hold slots is the admin's business: agents see counts only.
        const held = items(res).flatMap((n) => n['reservations'] as string[]);
        if (who === 'admin') expect(held).toContain(f.migrationId);
        else expect(held).toEqual([]);
      },
    },
    {
      route: 'GET /v1/cache-nodes/{cacheNodeId}',
      req: req('GET /v1/cache-nodes/{cacheNodeId}'),
      expect: ALL_OK,
    },
    {
      route: 'PUT /v1/cache-nodes/{cacheNodeId}',
      req: req('PUT /v1/cache-nodes/{cacheNodeId}'),
      expect: ADMIN_ONLY(200),
    },
    {
      route: 'PATCH /v1/cache-nodes/{cacheNodeId}',
      req: req('PATCH /v1/cache-nodes/{cacheNodeId}'),
      expect: ADMIN_ONLY(200),
    },
    // hkg is dc-gz's home: the admin gets past authorization to a 409.
    {
      route: 'DELETE /v1/cache-nodes/{cacheNodeId}',
      req: req('DELETE /v1/cache-nodes/{cacheNodeId}'),
      expect: ADMIN_ONLY(409),
    },
    // Only an admin may hold a cache node's index against its bucket (and, with repair, change both).
    {
      route: 'POST /v1/cache-nodes/{cacheNodeId}/verify',
      req: req('POST /v1/cache-nodes/{cacheNodeId}/verify'),
      expect: ADMIN_ONLY(200),
      check: (_, res) => expect(res.json).toMatchObject({ cacheNodeId: 'hkg', repair: false }),
    },
    {
      route: 'GET /v1/content-map',
      req: req('GET /v1/content-map'),
      expect: ALL_OK,
      check: (who, res) => {
        const rows = items(res)
          .map((r) => `${r['status']}:${r['dataCenterId']}`)
          .sort();
        const seen = {
          admin: ['DEST:dc-osa', 'SRC:dc-gz'],
          source: ['SRC:dc-gz'],
          destination: ['DEST:dc-osa'],
          other: [],
        };
        expect(rows).toEqual(seen[who]);
      },
    },
    {
      route: 'GET /v1/location-map',
      req: req('GET /v1/location-map'),
      expect: ALL_OK,
      check: (who, res) => expect(items(res).length).toBe(who === 'other' ? 0 : 1),
    },
    {
      route: 'POST /v1/migrations',
      req: { ...req('POST /v1/migrations'), headers: { 'idempotency-key': 'authz-create' } },
      expect: ADMIN_ONLY(202),
    },
    {
      route: 'GET /v1/migrations',
      req: { query: { limit: '1000' } },
      expect: ALL_OK,
      check: (who, res) => {
        const ids = items(res).map((m) => m['id']);
        if (who === 'other') expect(ids).not.toContain(f.migrationId);
        else expect(ids).toContain(f.migrationId);
      },
    },
    {
      route: 'GET /v1/migrations/{migrationId}',
      req: req('GET /v1/migrations/{migrationId}'),
      expect: { admin: 200, source: 200, destination: 200, other: 404 },
    },
    // Admin-only routes refuse every agent before looking the id up: the unrelated agent learns nothing either.
    {
      route: 'POST /v1/migrations/{migrationId}/cancel',
      req: { params: mig(f.cancelMigrationId) },
      expect: ADMIN_ONLY(200),
    },
    {
      route: 'POST /v1/migrations/{migrationId}/retry',
      req: req('POST /v1/migrations/{migrationId}/retry'),
      expect: ADMIN_ONLY(409),
    },
    {
      route: 'POST /v1/migrations/{migrationId}/decision',
      req: req('POST /v1/migrations/{migrationId}/decision'),
      expect: ADMIN_ONLY(409),
    },
    {
      route: 'POST /v1/batches',
      req: { ...req('POST /v1/batches'), headers: { 'idempotency-key': 'authz-batch' } },
      expect: ADMIN_ONLY(202),
    },
    {
      route: 'GET /v1/batches/{batchId}',
      req: req('GET /v1/batches/{batchId}'),
      expect: { admin: 200, source: 200, destination: 200, other: 404 },
    },
    // An agent estimates from its own data center only.
    {
      route: 'POST /v1/estimates',
      req: req('POST /v1/estimates'),
      expect: { admin: 200, source: 200, destination: 403, other: 403 },
    },
    { route: 'GET /v1/backup-policies', req: req('GET /v1/backup-policies'), expect: ADMIN_ONLY(200) },
    {
      route: 'GET /v1/backup-policies/{policyId}',
      req: req('GET /v1/backup-policies/{policyId}'),
      expect: ADMIN_ONLY(200),
    },
    {
      route: 'PUT /v1/backup-policies/{policyId}',
      req: { ...req('PUT /v1/backup-policies/{policyId}'), params: { policyId: 'authz-policy' } },
      expect: ADMIN_ONLY(201),
    },
    {
      route: 'DELETE /v1/backup-policies/{policyId}',
      req: { params: { policyId: 'authz-policy' } },
      expect: ADMIN_ONLY(204),
    },
    // What the cache keeps is the admin's call: agents may neither read nor change it.
    { route: 'GET /v1/cache/settings', req: req('GET /v1/cache/settings'), expect: ADMIN_ONLY(200) },
    { route: 'PATCH /v1/cache/settings', req: req('PATCH /v1/cache/settings'), expect: ADMIN_ONLY(200) },
    { route: 'GET /v1/pins', req: req('GET /v1/pins'), expect: ADMIN_ONLY(200) },
    // The fixture's migration has its manifest: its version of the image can be pinned, then read and unpinned.
    {
      route: 'PUT /v1/pins/{imageId}',
      req: { ...req('PUT /v1/pins/{imageId}'), body: { cacheNodeIds: ['hkg'], migrationId: f.migrationId } },
      expect: ADMIN_ONLY(201),
      check: (_, res) => expect(res.json).toMatchObject({ imageId: f.imageId, migrationId: f.migrationId }),
    },
    { route: 'GET /v1/pins/{imageId}', req: req('GET /v1/pins/{imageId}'), expect: ADMIN_ONLY(200) },
    { route: 'DELETE /v1/pins/{imageId}', req: req('DELETE /v1/pins/{imageId}'), expect: ADMIN_ONLY(204) },
    // Running the collector (here a dry run) is the admin's call too.
    {
      route: 'POST /v1/cache/gc',
      req: req('POST /v1/cache/gc'),
      expect: ADMIN_ONLY(200),
      check: (_, res) =>
        expect(res.json).toMatchObject({
          nodes: [{ cacheNodeId: 'hkg', dryRun: true }],
          maxEntriesPerNode: 200_000,
        }),
    },
    {
      route: 'GET /v1/agent/work',
      req: { query: { dataCenterId: f.from } },
      expect: { admin: 200, source: 200, destination: 403, other: 403 },
    },
    {
      route: 'POST /v1/agent/work-queue',
      req: { query: { dataCenterId: f.from } },
      expect: { admin: 200, source: 200, destination: 403, other: 403 },
    },
    {
      route: 'POST /v1/migrations/{migrationId}/source/manifest-url',
      req: {
        ...req('POST /v1/migrations/{migrationId}/source/manifest-url'),
        params: mig(f.manifestMigrationId),
      },
      expect: SOURCE_END(200),
    },
    // Nothing was uploaded: past authorization, a 409 saying so.
    {
      route: 'POST /v1/migrations/{migrationId}/source/manifest',
      req: {
        ...req('POST /v1/migrations/{migrationId}/source/manifest'),
        params: mig(f.manifestMigrationId),
      },
      expect: SOURCE_END(409),
    },
    // Nothing is stored yet: every chunk of the image is still to upload.
    {
      route: 'GET /v1/migrations/{migrationId}/source/upload-plan',
      req: { params: mig(f.uploadMigrationId) },
      expect: SOURCE_END(200),
      check: (_, res) => expect(items(res).map((c) => c['sha256'])).toContain(f.uploadChunkSha256),
    },
    // A URL is signed, nothing is stored.
    {
      route: 'POST /v1/migrations/{migrationId}/source/pack-url',
      req: { params: mig(f.uploadMigrationId), body: { sha256: UNSTORED_PACK, size: 4096 } },
      expect: SOURCE_END(200),
      check: (_, res) => expect(res.json).toMatchObject({ method: 'PUT' }),
    },
    // A pack that was never stored: read back, not found, rejected; nothing indexed.
    {
      route: 'POST /v1/migrations/{migrationId}/source/packs',
      req: { params: mig(f.uploadMigrationId), body: { packs: [UNSTORED_PACK] } },
      expect: SOURCE_END(200),
      check: (_, res) => {
        expect(res.json).toMatchObject({ verified: 0, chunks: 0, rejected: [{ sha256: UNSTORED_PACK }] });
        expect((res.json['rejected'] as { reason: string }[])[0]?.reason).toMatch(/not stored/);
      },
    },
    // Nothing is stored yet: a 409 listing what is missing.
    {
      route: 'POST /v1/migrations/{migrationId}/source/complete',
      req: { params: mig(f.uploadMigrationId) },
      expect: SOURCE_END(409),
    },
    // The migration waits for its destination, not its source: 409.
    {
      route: 'POST /v1/migrations/{migrationId}/source/failed',
      req: req('POST /v1/migrations/{migrationId}/source/failed'),
      expect: SOURCE_END(409),
    },
    {
      route: 'POST /v1/migrations/{migrationId}/source/released',
      req: req('POST /v1/migrations/{migrationId}/source/released'),
      expect: SOURCE_END(409),
    },
    {
      route: 'GET /v1/migrations/{migrationId}/destinations/{dataCenterId}/plan',
      req: req('GET /v1/migrations/{migrationId}/destinations/{dataCenterId}/plan'),
      expect: DESTINATION_END(200),
    },
    // A digest that is not the image's: the handler's 400 comes after authorization.
    {
      route: 'POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/complete',
      req: {
        params: { migrationId: f.migrationId, dataCenterId: f.to },
        body: { sha256: 'cd'.repeat(32) },
      },
      expect: DESTINATION_END(400),
    },
    // The destination of the manifest-stage migration has nothing to download yet: 409.
    {
      route: 'POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/failed',
      req: { params: { migrationId: f.manifestMigrationId, dataCenterId: f.to }, body: { reason: 'authz' } },
      expect: DESTINATION_END(409),
    },
    // The chunk is intact at nrt: the answer is a fresh URL, nothing is repaired.
    {
      route: 'POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/repair',
      req: req('POST /v1/migrations/{migrationId}/destinations/{dataCenterId}/repair'),
      expect: DESTINATION_END(200),
      check: (_, res) => expect(res.json['status']).toBe('intact'),
    },
    {
      route: 'POST /v1/migrations/{migrationId}/heartbeat',
      req: req('POST /v1/migrations/{migrationId}/heartbeat'),
      expect: DESTINATION_END(200),
    },
    { route: 'GET /health', req: {}, expect: ALL_OK },
  ];
}
