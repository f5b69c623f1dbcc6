import { expect, it, describe as suite } from 'vitest';
import { describe, isLocalOnly } from '../../../cli/render.ts';
import type { Migration } from '../../../protocol/api/migrations.ts';

const base = {
  id: 'mig-1',
  status: 'COMPLETED',
  mode: 'migrate',
  vmId: 'db-01',
  imageId: 'db-01.img',
  attempt: 1,
  sourceDataCenterId: 'dc-gz',
  upload: { bytesDone: 0, bytesTotal: 0, bytesCached: 0, chunksShared: 0 },
} as const;
const leg = (dataCenterId: string, local: boolean) => ({
  dataCenterId,
  status: 'COMPLETED',
  local,
  bytesReplicated: 0,
  bytesToReplicate: 0,
  bytesDownloaded: 0,
});

suite('describe', () => {
  it('says a local handover moves nothing, instead of waiting for a manifest that never comes', () => {
    const m = { ...base, legs: [leg('dc-gz', true)] } as unknown as Migration;
    expect(isLocalOnly(m)).toBe(true);
    const text = describe(m).join('\n');
    expect(text).toContain('no cache node is involved');
    expect(text).not.toContain("waiting for the source's manifest");
    expect(text).toContain('local handover');
  });

  it('a migration with one remote destination is not local, and waits for its manifest', () => {
    const m = {
      ...base,
      status: 'AWAITING_MANIFEST',
      legs: [leg('dc-gz', true), leg('dc-osa', false)],
    } as unknown as Migration;
    expect(isLocalOnly(m)).toBe(false);
    expect(describe(m).join('\n')).toContain("waiting for the source's manifest");
  });
});
