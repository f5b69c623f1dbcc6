// Bad input, property-based (issue 6 item 4), for the agent protocol: every agent route broken one place at a time
// against a migration waiting for its download, and malformed manifests — overlapping or gapped offsets, wrong
// sizes and lengths, a digest with two lengths, bad chunking parameters, wrong types, not JSON — uploaded to the
// presigned URL and submitted as the source agent does. Each is a 400 naming the field; nothing is stored but the
// uploaded file itself, and the migration still takes the right manifest afterwards.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createManifestUploadUrl, submitManifest } from '../../protocol/api/agent.ts';
import { type Manifest, manifestSchema, serializeManifest } from '../../protocol/manifest.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { getOne } from '../support/migrations.ts';
import { type Driven, migrationAt, putManifestFile, tinyImage } from './support/agent-driver.ts';
import { badBodies, fcOptions, type Path } from './support/arbitraries.ts';
import { baselines, type Fixtures } from './support/baselines.ts';
import { createFixtures, knownIds } from './support/fixtures.ts';
import { expectRejected, ROUTES, routeName, sender } from './support/fuzz.ts';
import { type FuzzContext, fuzzRoute } from './support/fuzz-route.ts';
import { snapshotter } from './support/snapshot.ts';

// The machine may be shared and busy: whole migrations run in some tests.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 240_000 });
const RUNS = Number(process.env['CHAOS_FUZZ_RUNS'] ?? 25);

let t: TestCloud;
let f: Fixtures;
let ctx: FuzzContext;
let snap: ReturnType<typeof snapshotter>;

beforeAll(async () => {
  // Fuzzing sends hundreds of requests a second from one principal: no rate limit here (api-rate-limit tests it).
  t = await startTestCloud({ agents: false, policyTickMs: 0, rateLimit: false });
  f = await createFixtures(t);
  snap = snapshotter(t, { ignoreAttributes: { Registry: ['agent'] } });
  ctx = {
    send: sender(t),
    snapshot: snap,
    validTokens: [t.cloud.tokens.adminToken, t.cloud.agentToken('dc-gz'), t.cloud.agentToken('dc-osa')],
    knownIds: knownIds(t, f),
    runs: RUNS,
  };
});
afterAll(async () => {
  snap?.close();
  await t?.dispose();
});

describe('agent routes: bad input is a 4xx naming the field, and changes nothing', () => {
  for (const r of ROUTES.filter((x) => (x.tags ?? []).includes('agent'))) {
    it(routeName(r), async () => {
      await fuzzRoute(ctx, r, baselines(f)[routeName(r)] ?? {});
    });
  }
});

/** `chunks[2].offset`, as protocol/manifest.ts names a field, under `manifest.` as the API reports it. */
const manifestField = (p: Path) =>
  `manifest${p.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('')}`;

interface BadManifest {
  readonly file: string;
  readonly field: string;
  readonly how: string;
}

/** A valid manifest of `n` chunks between minSize and maxSize. */
const FIVE = tinyImage([1000, 2000, 1500, 300, 4000]);

const clone = (m: Manifest) =>
  JSON.parse(JSON.stringify(m)) as { -readonly [K in keyof Manifest]: Manifest[K] } & {
    chunks: { offset: number; length: number; sha256: string }[];
  };

/** Manifests broken the ways an agent bug or an attacker would, each with the field the server must name. */
function badManifests(valid: Manifest): fc.Arbitrary<BadManifest> {
  const n = valid.chunks.length;
  const one = (how: string, edit: (m: ReturnType<typeof clone>) => string) => {
    const m = clone(valid);
    const field = edit(m);
    return { file: JSON.stringify(m), field, how };
  };
  const structural = fc.oneof(
    fc.tuple(fc.integer({ min: 1, max: n - 1 }), fc.integer({ min: 1, max: 999 })).map(([i, k]) =>
      one(`chunk ${i} overlaps by ${k}`, (m) => {
        (m.chunks[i] as { offset: number }).offset -= k;
        return manifestField(['chunks', i, 'offset']);
      }),
    ),
    fc.tuple(fc.integer({ min: 1, max: n - 1 }), fc.integer({ min: 1, max: 1e9 })).map(([i, k]) =>
      one(`gap of ${k} before chunk ${i}`, (m) => {
        (m.chunks[i] as { offset: number }).offset += k;
        return manifestField(['chunks', i, 'offset']);
      }),
    ),
    fc.integer({ min: 1, max: 1e6 }).map((k) =>
      one(`first chunk at ${k}`, (m) => {
        for (const c of m.chunks) c.offset += k;
        return manifestField(['chunks', 0, 'offset']);
      }),
    ),
    fc
      .integer({ min: -1e6, max: 1e6 })
      .filter((k) => k !== 0)
      .map((k) =>
        one(`size off by ${k}`, (m) => {
          m.size = Math.max(0, m.size + k);
          return manifestField(['size']);
        }),
      )
      .filter((b) => JSON.parse(b.file).size !== valid.size),
    fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 1, max: 8 * 1024 * 1024 })).map(([i, k]) =>
      one(`chunk ${i} longer than maxSize`, (m) => {
        (m.chunks[i] as { length: number }).length = valid.chunking.maxSize + k;
        let end = 0;
        for (const c of m.chunks) {
          c.offset = end;
          end += c.length;
        }
        m.size = end;
        return manifestField(['chunks', i, 'length']);
      }),
    ),
    fc
      .tuple(fc.integer({ min: 0, max: n - 2 }), fc.integer({ min: 1, max: valid.chunking.minSize - 1 }))
      .map(([i, len]) =>
        one(`chunk ${i} shorter than minSize`, (m) => {
          (m.chunks[i] as { length: number }).length = len;
          let end = 0;
          for (const c of m.chunks) {
            c.offset = end;
            end += c.length;
          }
          m.size = end;
          return manifestField(['chunks', i, 'length']);
        }),
      ),
    fc
      .tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: n - 1 }))
      .filter(([i, j]) => i < j && valid.chunks[i]?.length !== valid.chunks[j]?.length)
      .map(([i, j]) =>
        one(`chunk ${j} reuses the digest of chunk ${i} with another length`, (m) => {
          (m.chunks[j] as { sha256: string }).sha256 = m.chunks[i]?.sha256 as string;
          return manifestField(['chunks', j, 'length']);
        }),
      ),
    fc
      .constantFrom(
        ['avgSize', 1000] as const,
        ['avgSize', 100] as const,
        ['minSize', 1024] as const,
        ['minSize', 10] as const,
        ['maxSize', 1024] as const,
        ['maxSize', 16 * 1024 * 1024] as const,
      )
      .map(([key, v]) =>
        one(`chunking.${key} = ${v}`, (m) => {
          (m.chunking as unknown as Record<string, number>)[key] = v;
          return manifestField(['chunking', key]);
        }),
      ),
    fc
      .constantFrom(
        ['version', 2],
        ['format', 'vmdk-ish'],
        ['sha256', 'AB'.repeat(32)],
        ['sha256', 'ab'.repeat(31)],
      )
      .map(([key, v]) =>
        one(`${key} = ${v}`, (m) => {
          (m as unknown as Record<string, unknown>)[key as string] = v;
          return manifestField([key as string]);
        }),
      ),
    fc.constantFrom('', '{', 'null', '[]', '"manifest"', '{"version":1', '\u0000\u0001').map((file) => ({
      file,
      field: 'manifest',
      how: 'not a manifest at all',
    })),
  );
  // protocol/manifest.ts names an unknown key by the object that holds it.
  const typed = badBodies(manifestSchema, JSON.parse(serializeManifest(valid))).map((m) => ({
    file: JSON.stringify(m.body),
    field: !m.path
      ? m.field && 'manifest'
      : m.how === 'removed' && typeof m.path[m.path.length - 1] === 'number'
        ? '' // a chunk left out shows as a gap or a wrong size, wherever it was
        : manifestField(m.how === 'unknown field' ? m.path.slice(0, -1) : m.path),
    how: `${m.how} at ${m.field}`,
  }));
  return fc.oneof({ arbitrary: structural, weight: 3 }, { arbitrary: typed, weight: 2 });
}

describe('malformed manifests', () => {
  let m: Driven;
  let before: Awaited<ReturnType<typeof snap.take>>;
  const skip = (id: string) => (name: string) => name === `s3:vmmig-control/migrations/${id}/manifest.json`;

  beforeAll(async () => {
    m = await migrationAt(t, 'manifest', { image: FIVE });
    before = await snap.take({ skip: skip(m.migration.id) });
  });

  it('each is a 400 naming the field, and the migration records nothing', async () => {
    const send = sender(t);
    const src = t.cloud.agentToken(m.from);
    const params = { migrationId: m.migration.id };
    await fc.assert(
      fc.asyncProperty(badManifests(FIVE.manifest), async (bad) => {
        // A manifest file is at least 2 bytes (manifest-url refuses less).
        const ref = await putManifestFile(t.agent(m.from), m.migration.id, bad.file.padEnd(2, ' '));
        const res = await send({ method: 'post', path: submitManifest.path, params, body: ref, token: src });
        const what = `manifest ${bad.how}: ${bad.file.slice(0, 300)}`;
        expectRejected(res, { statuses: [400], what });
        if (bad.field) {
          // Named exactly: the field, something inside it, or something it is inside (but not just "manifest").
          const exp = bad.field;
          const fields = (res.json.error?.issues ?? []).map((i) => i.field);
          const named = fields.some(
            (x) =>
              x === exp ||
              x.startsWith(`${exp}.`) ||
              x.startsWith(`${exp}[`) ||
              (x !== 'manifest' && (exp.startsWith(`${x}.`) || exp.startsWith(`${x}[`))),
          );
          expect(named, `${what}\n→ ${res.text.slice(0, 500)}\nexpected an issue naming ${exp}`).toBe(true);
        }
      }),
      fcOptions(RUNS * 5),
    );
    expect((await getOne(t.admin, m.migration.id)).image).toBeUndefined();
    expect(snap.diff(before, await snap.take({ skip: skip(m.migration.id) }))).toEqual([]);
  });

  it('a submission that does not match the uploaded file names sha256 or size; storage refuses other bytes', async () => {
    const send = sender(t);
    const src = t.cloud.agentToken(m.from);
    const params = { migrationId: m.migration.id };
    const ref = await putManifestFile(t.agent(m.from), m.migration.id, FIVE.file);
    const otherSha = createHash('sha256').update('other').digest('hex');
    const submit = { method: 'post', path: submitManifest.path, params, token: src };
    expectRejected(await send({ ...submit, body: { ...ref, sha256: otherSha } }), {
      statuses: [400],
      field: 'sha256',
    });
    expectRejected(await send({ ...submit, body: { ...ref, size: ref.size + 1 } }), {
      statuses: [400],
      field: 'size',
    });
    // The presigned URL carries the checksum: bytes other than the announced ones are refused by storage.
    const target = await t
      .agent(m.from)
      .call<{ url: string; headers: Record<string, string> }>(createManifestUploadUrl, { params, json: ref });
    const tampered = `${FIVE.file.slice(0, -2)} }`;
    const put = await fetch(target.body.url, { method: 'PUT', headers: target.body.headers, body: tampered });
    expect(put.status).toBeGreaterThanOrEqual(400);
    expect((await getOne(t.admin, m.migration.id)).image).toBeUndefined();
    expect(snap.diff(before, await snap.take({ skip: skip(m.migration.id) }))).toEqual([]);
  });

  it('after all that, the right manifest is accepted', async () => {
    const ref = await putManifestFile(t.agent(m.from), m.migration.id, FIVE.file);
    const res = await t.agent(m.from).call<{ chunks: number }>(submitManifest, {
      params: { migrationId: m.migration.id },
      json: ref,
    });
    expect(res.body.chunks).toBe(5);
    expect((await getOne(t.admin, m.migration.id)).image?.sha256).toBe(FIVE.manifest.sha256);
  });
});
