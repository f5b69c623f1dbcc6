// The closing summary of `migrate --wait`, `retry --wait` and `status --watch`, and the per-destination lines of
// `vmmig status`: downloaded vs reused at the destination, allocated bytes, a replaced file.
import { expect, it, describe as suite } from 'vitest';
import { describe, legOutcome, migrationSummary } from '../../../cli/render.ts';
import type { Leg, Migration } from '../../../protocol/api/migrations.ts';

const MiB = 1024 * 1024;
const leg = (dataCenterId: string, extra: Partial<Leg> = {}): Leg => ({
  dataCenterId,
  cacheNodeId: 'nrt',
  local: false,
  status: 'COMPLETED',
  chunksToReplicate: 3,
  bytesToReplicate: 12 * MiB,
  chunksReplicated: 3,
  bytesReplicated: 12 * MiB,
  chunksDownloaded: 3,
  bytesDownloaded: 4 * MiB,
  ...extra,
});
const migration = (legs: Leg[]): Migration =>
  ({
    id: 'mig-1',
    status: 'COMPLETED',
    mode: 'migrate',
    vmId: 'web',
    imageId: 'web.img',
    attempt: 1,
    sourceDataCenterId: 'dc-gz',
    image: {
      size: 12 * MiB,
      sha256: 'a'.repeat(64),
      format: 'raw',
      chunks: 3,
      uniqueChunks: 3,
      zeroBytes: 0,
    },
    upload: {
      chunksTotal: 3,
      bytesTotal: 12 * MiB,
      chunksDone: 3,
      bytesDone: 12 * MiB,
      bytesCached: 0,
      chunksShared: 0,
    },
    replication: { chunksCopied: 3, bytesCopied: 12 * MiB },
    legs,
  }) as unknown as Migration;

suite('migrationSummary', () => {
  it('tells downloaded from reused at the destination, shows allocated bytes and the replaced file', () => {
    const m = migration([
      leg('dc-osa', {
        bytesDownloaded: 4 * MiB,
        bytesReusedAtDestination: 8 * MiB,
        deliveredPath: '/dc/osa/images/web.img',
        deliveredFormat: 'raw',
        allocatedBytes: 6 * MiB,
        replaced: true,
      }),
    ]);
    const [head, osa] = migrationSummary(m, 3.25);
    expect(head).toBe(
      'COMPLETED in 3.3 s: image 12.0 MiB, uploaded 12.0 MiB, copied between cache nodes 12.0 MiB, ' +
        'downloaded 4.0 MiB, reused at the destination 8.0 MiB; delivered image 6.0 MiB allocated on disk',
    );
    expect(osa).toContain('downloaded 4.0 MiB, reused 8.0 MiB from images already at dc-osa');
    expect(osa).toContain('delivered /dc/osa/images/web.img (raw), 6.0 MiB allocated on disk');
    expect(osa).toContain('replaced /dc/osa/images/web.img');
  });

  it('sums several destinations and names each', () => {
    const m = migration([
      leg('dc-osa', { bytesReusedAtDestination: 8 * MiB, allocatedBytes: 6 * MiB }),
      leg('dc-sh', { bytesDownloaded: 12 * MiB, bytesReusedAtDestination: 0, allocatedBytes: 12 * MiB }),
    ]);
    const lines = migrationSummary(m, 1);
    expect(lines[0]).toContain('downloaded 16.0 MiB, reused at the destinations 8.0 MiB');
    expect(lines[0]).toContain('delivered images 18.0 MiB allocated on disk');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(/^ {2}dc-sh +COMPLETED/);
    expect(lines.join('\n')).not.toContain('replaced');
  });

  it('an older record without the new facts says only what it knows', () => {
    const lines = migrationSummary(migration([leg('dc-osa')]));
    expect(lines[0]).toBe(
      'COMPLETED: image 12.0 MiB, uploaded 12.0 MiB, copied between cache nodes 12.0 MiB, downloaded 4.0 MiB',
    );
    expect(lines.join('\n')).not.toMatch(/reused|allocated|replaced/);
  });

  it('a local handover moves nothing but still reports where the image is', () => {
    const m = migration([
      leg('dc-gz', {
        local: true,
        bytesDownloaded: 0,
        deliveredPath: '/dc/gz/images/web.img',
        allocatedBytes: MiB,
      }),
    ]);
    const lines = migrationSummary(m, 0.5);
    expect(lines[0]).toBe('COMPLETED in 0.5 s: local handover within dc-gz, nothing transferred');
    expect(lines[1]).toContain('delivered /dc/gz/images/web.img, 1.0 MiB allocated on disk');
    expect(lines[1]).not.toContain('downloaded');
  });

  it('a failed destination carries its cause', () => {
    const m = {
      ...migration([leg('dc-osa', { status: 'FAILED', bytesDownloaded: 0, error: 'disk full' })]),
      status: 'FAILED',
    };
    expect(migrationSummary(m as Migration)[1]).toMatch(/dc-osa +FAILED .*disk full/);
  });
});

suite('vmmig status: per destination', () => {
  it('shows downloaded vs reused, allocated bytes and the replaced file under the leg', () => {
    const l = leg('dc-osa', {
      bytesReusedAtDestination: 8 * MiB,
      deliveredPath: '/p/web.img',
      allocatedBytes: 2 * MiB,
      replaced: true,
    });
    const text = describe(migration([l])).join('\n');
    expect(text).toContain(legOutcome(l));
    expect(text).toContain('reused 8.0 MiB from images already at dc-osa');
    expect(text).toContain('replaced /p/web.img');
    // Reused bytes count towards the download bar: a completed leg is at 100%.
    expect(text).toMatch(/download \[#+\] 100%/);
  });
});
