// Dynamic topology (draft §5.1 item 3 names its absence as a limit) and the agents' bandwidth limit, end to end
// with real agent processes: a data center registered at runtime is usable at once and cannot be removed while
// a migration uses it; a draining cache node finishes its work and takes no more; `--limit-rate` caps transfers.
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../cli/client.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import { createMigration, type Migration } from '../../protocol/api/migrations.ts';
import {
  type CacheNode,
  type DataCenter,
  deleteDataCenter,
  getCacheNode,
  getDataCenter,
  patchCacheNode,
} from '../../protocol/api/registry.ts';
import { type AgentProcess, startAgentProcess } from '../support/agent-process.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { waitForMigration } from '../support/migrations.ts';

const MiB = 1 << 20;
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
/** Seconds between the agent's log lines matching `from` and `to` (the agent stamps each line). */
const secondsBetween = (lines: string[], from: RegExp, to: RegExp) => {
  const at = (re: RegExp) => {
    const line = lines.find((l) => re.test(l));
    if (!line) throw new Error(`no agent line matching ${re}:\n${lines.join('\n')}`);
    return Date.parse(line.split(' ')[0] as string);
  };
  return (at(to) - at(from)) / 1000;
};

describe('dynamic topology and bandwidth limits', { timeout: 180_000 }, () => {
  let t: TestCloud;
  const agents = new Map<string, AgentProcess>();

  /** (Re)starts a data center's agent process with these extra arguments. */
  async function agent(dc: string, args: string[] = []): Promise<AgentProcess> {
    await agents.get(dc)?.kill();
    const a = startAgentProcess(t, dc, args);
    agents.set(dc, a);
    await a.waitForLine(/listening on the work queue/);
    return a;
  }
  const start = async (imageId: string, from: string, to: string) =>
    (
      await t.admin.call<Migration>(createMigration, {
        json: {
          vmId: imageId.replace(/\..*/, ''),
          hostId: 'kvm-1',
          imageId,
          sourceDataCenterId: from,
          destinations: [{ dataCenterId: to }],
        },
        headers: { 'idempotency-key': randomUUID() },
      })
    ).body;
  const node = async (id: string) =>
    (await t.admin.call<CacheNode>(getCacheNode, { params: { cacheNodeId: id } })).body;
  const image = (dc: string, id: string) => join(t.cloud.dataCenterDir(dc), 'images', id);

  beforeAll(async () => {
    t = await startTestCloud({ agents: false });
    await writeRawImage(image('dc-gz', 'crm-01.img'), vmLikeSpec(48 * MiB, 12 * MiB, 'topology', 4));
    await Promise.all([agent('dc-gz'), agent('dc-jkt')]);
  });
  afterAll(async () => {
    for (const a of agents.values()) await a.kill();
    await t?.dispose();
  });

  it('a data center added at runtime (`vmmig dc add`) is usable at once; removing it while in use is refused naming the migration', async () => {
    const add = await t.vmmig([
      'dc',
      'add',
      'dc-sel',
      '--name',
      'Seoul DC',
      '--address',
      '10.5.0.10',
      '--location',
      '37.57,126.98',
    ]);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({
      id: 'dc-sel',
      cacheNode: { id: 'nrt', reason: 'nearest' },
    });

    const m = await start('crm-01.img', 'dc-gz', 'dc-sel');
    // Its agent is not running yet: the migration waits for it with the data center in use.
    await waitForMigration(t.admin, m.id, (x) => x.status === 'DOWNLOADING');
    const refused = await t.vmmig(['dc', 'rm', 'dc-sel']);
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`data center "dc-sel" has active migrations: ${m.id}`);
    const api = await t.admin
      .call(deleteDataCenter, { params: { dataCenterId: 'dc-sel' } })
      .catch((e: ApiError) => e);
    expect(api).toBeInstanceOf(ApiError);
    expect((api as ApiError).status).toBe(409);
    expect((api as ApiError).body?.error).toMatchObject({ code: 'Conflict', migrations: [m.id] });

    // The agent of the new data center: its token exists from the moment it was registered.
    const sel = await agent('dc-sel');
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(done.legs).toMatchObject([{ dataCenterId: 'dc-sel', cacheNodeId: 'nrt', status: 'COMPLETED' }]);
    expect(await sha(image('dc-sel', 'crm-01.img'))).toBe(await sha(image('dc-gz', 'crm-01.img')));
    await sel.waitForLine(new RegExp(`${m.id}: crm-01.img delivered`));

    const removed = await t.vmmig(['dc', 'rm', 'dc-sel']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toBe('removed dc-sel\n');
    await expect(
      t.admin.call<DataCenter>(getDataCenter, { params: { dataCenterId: 'dc-sel' } }),
    ).rejects.toMatchObject({ status: 404 });
    await sel.kill();
    agents.delete('dc-sel');
  });

  it('a draining cache node (`vmmig node set hkg --status draining`) finishes its work and takes no more', async () => {
    await agents.get('dc-sh')?.kill();
    // First migration through hkg, held at its download (no agent at dc-sh yet) with its slot at hkg.
    const first = await start('crm-01.img', 'dc-gz', 'dc-sh');
    await waitForMigration(t.admin, first.id, (x) => x.status === 'DOWNLOADING');
    expect((await node('hkg')).reservations).toContain(first.id);

    const drain = await t.vmmig(['node', 'set', 'hkg', '--status', 'draining']);
    try {
      expect(drain.code, drain.stderr).toBe(0);
      expect(JSON.parse(drain.stdout)).toMatchObject({ id: 'hkg', status: 'draining' });

      // New work routes to the next nearest active node: Guangzhou's home is hkg, Singapore comes next.
      const second = await start('crm-01.img', 'dc-gz', 'dc-jkt');
      const done = await waitForMigration(t.admin, second.id);
      expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
      expect(done.sourceCacheNodeId).toBe('sin');
      expect(done.legs).toMatchObject([{ dataCenterId: 'dc-jkt', cacheNodeId: 'sin', status: 'COMPLETED' }]);
      expect(done.history?.find((h) => h.event === 'resolved')?.message).toBe(
        'source dc-gz via cache node sin; dc-jkt via sin',
      );

      // The first one kept its slot at hkg all along and completes through it.
      expect((await node('hkg')).reservations).toEqual([first.id]);
      await agent('dc-sh');
      const firstDone = await waitForMigration(t.admin, first.id);
      expect(firstDone.status, JSON.stringify(firstDone.error)).toBe('COMPLETED');
      expect(firstDone.sourceCacheNodeId).toBe('hkg');
      expect(firstDone.legs).toMatchObject([
        { dataCenterId: 'dc-sh', cacheNodeId: 'hkg', status: 'COMPLETED' },
      ]);
      expect(await sha(image('dc-sh', 'crm-01.img'))).toBe(await sha(image('dc-gz', 'crm-01.img')));
      const ls = await t.vmmig(['node', 'ls']);
      expect(ls.stdout.split('\n').map((l) => (l ? JSON.parse(l) : undefined))).toContainEqual(
        expect.objectContaining({ id: 'hkg', status: 'draining', activeTransfers: 0, reservations: [] }),
      );
    } finally {
      await t.admin.call(patchCacheNode, { params: { cacheNodeId: 'hkg' }, json: { status: 'active' } });
    }
  });

  it('`vmmig agent --limit-rate 4M` / `--limit-download 4M` cap the transfer rate in each direction', async () => {
    // 32 MiB of data no cache node holds yet, from Jakarta to Osaka.
    await writeRawImage(image('dc-jkt', 'bulk-01.img'), {
      size: 40 * MiB,
      extents: [{ offset: 0, length: 32 * MiB, seed: `bulk ${randomUUID()}` }],
    });
    const source = await agent('dc-jkt', ['--limit-rate', '4M']);
    const destination = await agent('dc-osa', ['--limit-download', '4M']);
    const m = await start('bulk-01.img', 'dc-jkt', 'dc-osa');
    const done = await waitForMigration(t.admin, m.id);
    expect(done.status, JSON.stringify(done.error)).toBe('COMPLETED');
    expect(await sha(image('dc-osa', 'bulk-01.img'))).toBe(await sha(image('dc-jkt', 'bulk-01.img')));
    const bytes = done.upload.bytesTotal;
    expect(bytes).toBeGreaterThanOrEqual(32 * MiB);
    expect(done.legs[0]?.bytesDownloaded).toBe(bytes);

    // A token bucket of 4 MiB/s bursts at most one second's worth, and a chunk (at most 8 MiB) goes once the
    // bucket is full: moving N bytes cannot take less than (N - 8 MiB) / 4 MiB/s. Only a lower bound is checked.
    const floor = (bytes - 8 * MiB) / (4 * MiB);
    await source.waitForLine(new RegExp(`${m.id}: upload complete`));
    const upload = secondsBetween(
      source.lines,
      new RegExp(`${m.id}: upload bulk-01.img`),
      new RegExp(`${m.id}: upload complete`),
    );
    expect(upload).toBeGreaterThanOrEqual(floor);
    await destination.waitForLine(new RegExp(`${m.id}: bulk-01.img delivered`));
    const download = secondsBetween(
      destination.lines,
      new RegExp(`${m.id}: download bulk-01.img`),
      new RegExp(`${m.id}: bulk-01.img delivered`),
    );
    expect(download).toBeGreaterThanOrEqual(floor);
  });
});
