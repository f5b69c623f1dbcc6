// Authorization matrix (issue 6 item 5): every route × {admin, source agent, destination agent, agent of an
// unrelated data center, no token, bad token} gets the answer docs/api.md promises. Denied requests change nothing;
// allowed ones see only what their principal may (rows of their own data center, no other migrations' ids).
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { migrationAt } from './support/agent-driver.ts';
import { type AuthzFixtures, matrix, type Who } from './support/authz-matrix.ts';
import { createFixtures } from './support/fixtures.ts';
import { expectRejected, type RawRequest, ROUTES, route, routeName, sender } from './support/fuzz.ts';
import { snapshotter } from './support/snapshot.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
let t: TestCloud;
let f: AuthzFixtures;
let snap: ReturnType<typeof snapshotter>;
let send: ReturnType<typeof sender>;
const tokens = {} as Record<Who | 'bad', string>;

beforeAll(async () => {
  t = await startTestCloud({ agents: false, policyTickMs: 0 });
  const base = await createFixtures(t);
  const [manifest, upload, cancel] = [
    await migrationAt(t, 'manifest'),
    await migrationAt(t, 'upload'),
    await migrationAt(t, 'manifest'),
  ];
  f = {
    ...base,
    manifestMigrationId: manifest.migration.id,
    uploadMigrationId: upload.migration.id,
    uploadChunkSha256: upload.image.manifest.chunks[0]?.sha256 as string,
    cancelMigrationId: cancel.migration.id,
  };
  Object.assign(tokens, {
    admin: t.cloud.tokens.adminToken,
    source: t.cloud.agentToken('dc-gz'),
    destination: t.cloud.agentToken('dc-osa'),
    other: t.cloud.agentToken('dc-jkt'),
    // dc-gz's name with dc-osa's signature: well-formed, not valid.
    bad: `vmmig-agent.dc-gz.${t.cloud.agentToken('dc-osa').split('.')[2]}`,
  });
  snap = snapshotter(t, { ignoreAttributes: { Registry: ['agent'] } });
  send = sender(t);
});
afterAll(async () => {
  snap?.close();
  await t?.dispose();
});

const request = (name: string, req: Omit<RawRequest, 'method' | 'path' | 'token'>, token: string | null) => {
  const r = route(name);
  return { method: r.method, path: r.path, ...req, token };
};

describe('authorization matrix', () => {
  it('covers every route', () => {
    expect(
      matrix({} as AuthzFixtures)
        .map((r) => r.route)
        .sort(),
    ).toEqual(ROUTES.map(routeName).sort());
  });

  it('no token, a bad token and every denied principal are refused (401/403/404), and nothing changes', async () => {
    const before = await snap.take();
    let cells = 0;
    for (const row of matrix(f)) {
      const open = !row.route.includes(' /v1/');
      for (const token of [null, tokens.bad, 'not-a-token']) {
        const res = await send(request(row.route, row.req, token));
        if (open) expect(res.status, `${row.route} without valid credentials`).toBe(200);
        else
          expectRejected(res, { statuses: [401], code: 'Unauthorized', what: `${row.route} token ${token}` });
        cells++;
      }
      for (const who of ['source', 'destination', 'other'] as const) {
        const expected = row.expect[who];
        if (![401, 403, 404].includes(expected)) continue;
        const res = await send(request(row.route, row.req, tokens[who]));
        expectRejected(res, {
          statuses: [expected],
          code: expected === 401 ? 'Unauthorized' : expected === 403 ? 'Forbidden' : 'NotFound',
          what: `${row.route} as ${who}`,
        });
        cells++;
      }
    }
    expect(snap.diff(before, await snap.take())).toEqual([]);
    expect(cells).toBeGreaterThan(150);
  });

  it('allowed principals get through, each seeing only its own', async () => {
    for (const row of matrix(f)) {
      for (const who of ['other', 'destination', 'source', 'admin'] as const) {
        const expected = row.expect[who];
        if ([401, 403, 404].includes(expected)) continue;
        const res = await send(request(row.route, row.req, tokens[who]));
        expect(res.status, `${row.route} as ${who} → ${res.text.slice(0, 300)}`).toBe(expected);
        row.check?.(who, res);
      }
    }
  });

  it('/openapi.json is open to everyone', async () => {
    for (const token of [null, tokens.bad, tokens.other, tokens.admin]) {
      const res = await send({ method: 'get', path: '/openapi.json', token });
      expect(res.status).toBe(200);
      expect(res.json['openapi']).toBe('3.1.0');
    }
  });
});
