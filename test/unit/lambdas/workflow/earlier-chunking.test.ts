import { describe, expect, it } from 'vitest';
import type { Uses } from '../../../../lambdas/aws/deps.ts';
import { manifestKey } from '../../../../lambdas/domain/control-keys.ts';
import { chunkingIn, earlierChunking } from '../../../../lambdas/workflow/earlier-chunking.ts';
import { buildManifest, serializeManifest } from '../../../../protocol/manifest.ts';

const MiB = 1 << 20;
const manifestText = (avgSize: number) =>
  serializeManifest(
    buildManifest('raw', {
      size: 3 * avgSize,
      sha256: 'a'.repeat(64),
      chunking: { minSize: avgSize / 4, avgSize, maxSize: avgSize * 2 },
      chunks: [0, 1, 2].map((i) => ({ offset: i * avgSize, length: avgSize, sha256: String(i).repeat(64) })),
    }),
  );

function fakeDeps(rows: string[], manifests: Record<string, string>) {
  const heads: string[] = [];
  const deps = {
    control: { bucket: 'control', region: 'us-east-1' },
    mapping: {
      queryContentMap: async () => ({ items: rows.map((migrationId) => ({ migrationId })) }),
    },
    storage: {
      getHead: async (_b: unknown, key: string, length: number) => {
        heads.push(key);
        const text = manifests[key];
        return text === undefined ? undefined : Buffer.from(text).subarray(0, length);
      },
    },
  } as unknown as Uses<'mapping' | 'storage' | 'control'>;
  return { deps, heads };
}

describe('the chunking an image was stored with before', () => {
  it('reads it from the first bytes of a manifest', () => {
    expect(chunkingIn(manifestText(4 * MiB))).toEqual({ minSize: MiB, avgSize: 4 * MiB, maxSize: 8 * MiB });
    expect(chunkingIn(manifestText(4 * MiB).slice(0, 1024))).toEqual({
      minSize: MiB,
      avgSize: 4 * MiB,
      maxSize: 8 * MiB,
    });
  });

  it('ignores what is not a valid chunking', () => {
    expect(chunkingIn('{"version":1}')).toBeUndefined();
    expect(chunkingIn('{"chunking":{"minSize":1,"avgSize":1000,"maxSize":2}}')).toBeUndefined();
    expect(chunkingIn('{"chunking":{"avgSize":')).toBeUndefined();
  });

  it('takes the newest earlier migration that left a manifest, never the migration itself', async () => {
    const { deps, heads } = fakeDeps(['mig-now', 'mig-gone', 'mig-old', 'mig-older'], {
      [manifestKey('mig-now')]: manifestText(256 * 1024),
      [manifestKey('mig-old')]: manifestText(4 * MiB),
      [manifestKey('mig-older')]: manifestText(MiB),
    });
    expect((await earlierChunking(deps, { id: 'mig-now', imageId: 'img' }))?.avgSize).toBe(4 * MiB);
    expect(heads).toEqual([manifestKey('mig-gone'), manifestKey('mig-old')]);
  });

  it('is undefined for an image never migrated', async () => {
    const { deps } = fakeDeps([], {});
    expect(await earlierChunking(deps, { id: 'mig-now', imageId: 'img' })).toBeUndefined();
  });
});
