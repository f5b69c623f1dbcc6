// The CLI at its edges, run as an operator runs it (a separate `vmmig` process against the real local cloud): which
// token an agent uses, exit codes, errors that say what to do, a batch file that is not there, the closing summary
// of migrate --wait / retry --wait / status --watch, and a backup policy's first run.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, exitCodeTable } from '../../cli/exit-codes.ts';
import { findFreePort } from '../../local/ports.ts';
import { vmLikeSpec, writeRawImage } from '../../local/sample-images.ts';
import type { BackupPolicy } from '../../protocol/api/policies.ts';
import { startTestCloud, type TestCloud } from '../support/local-cloud.ts';
import { waitForMigration } from '../support/migrations.ts';

describe('vmmig at the edges', () => {
  let t: TestCloud;
  let empty: string;
  const image = (dc: string, file: string) => join(t.cloud.dataCenterDir(dc), 'images', file);

  beforeAll(async () => {
    t = await startTestCloud({ agents: true });
    empty = await mkdtemp(join(tmpdir(), 'vmmig-no-cloud-'));
    await writeRawImage(image('dc-gz', 'web.img'), vmLikeSpec(8 << 20, 3 << 20, 'cli edges', 3));
  });
  afterAll(async () => {
    await t?.dispose();
    if (empty) await rm(empty, { recursive: true, force: true });
  });

  it('vmmig agent --help: the token is the data center’s agent token, never the admin token', async () => {
    const help = await t.vmmig(['agent', '--help']);
    expect(help.code).toBe(EXIT.ok);
    const token = help.stdout.slice(help.stdout.indexOf('--token')).replace(/\s+/g, ' ');
    expect(token).toMatch(
      /^--token <token> this data center's agent token \(default: VMMIG_TOKEN, or the local cloud's agent token for --vrn; an admin token is refused\)/,
    );
    expect(token.slice(0, 200)).not.toContain('admin token)');
    // And it is refused when it comes from the environment.
    const asAdmin = await t.vmmig(['agent', '--vrn', 'dc-gz', '--dir', join(empty, 'dc-gz')], {
      VMMIG_TOKEN: t.cloud.tokens.adminToken,
    });
    expect(asAdmin.code).toBe(EXIT.usage);
    expect(asAdmin.stderr).toContain(
      'VMMIG_TOKEN is an admin token; the agent of dc-gz runs with its own agent token',
    );
  });

  it('vmmig --help ends with the exit codes of cli/exit-codes.ts', async () => {
    const help = await t.vmmig(['--help']);
    for (const { code, meaning } of exitCodeTable()) expect(help.stdout).toContain(`${code}  ${meaning}`);
  });

  it('a --batch file that is not there: exit 2, naming the file', async () => {
    const file = join(empty, 'vms.txt');
    const r = await t.vmmig(['migrate', '--batch', file, '--from', 'dc-gz', '--to', 'dc-osa']);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr).toContain(`error: --batch ${file}: cannot read it (no such file`);
  });

  it('credentials: a wrong token exits 6, an agent token on an admin command 7', async () => {
    const wrong = await t.vmmig(['ls', '--token', 'wrong']);
    expect(wrong.code).toBe(EXIT.unauthenticated);
    expect(wrong.stderr).toContain('check --token / VMMIG_TOKEN');
    const agent = await t.vmmig([
      'node',
      'set',
      'hkg',
      '--capacity',
      '5',
      '--token',
      t.cloud.agentToken('dc-gz'),
    ]);
    expect(agent.code, agent.stderr).toBe(EXIT.forbidden);
  });

  it('an API that does not answer: names the URL, the cause, and how to start or find the API', async () => {
    const port = await findFreePort();
    const r = await t.vmmig(['ls', '--endpoint', `http://127.0.0.1:${port}`]);
    expect(r.code).toBe(EXIT.unavailable);
    expect(r.stderr).toContain(
      `error: cannot reach the API at http://127.0.0.1:${port} (connect ECONNREFUSED`,
    );
    expect(r.stderr).toContain('`npm start`');
    expect(r.stderr).toContain('--data-dir / VMMIG_DATA_DIR');
    expect(r.stderr).not.toContain('fetch failed');
  });

  it('no local cloud on the data directory: says which, and how to start one or name the right one', async () => {
    const r = await t.vmmig(['ls'], { VMMIG_DATA_DIR: empty });
    expect(r.code).toBe(EXIT.unavailable);
    expect(r.stderr).toContain(`no local cloud runs on ${empty} (VMMIG_DATA_DIR)`);
    expect(r.stderr).toContain(`npm start -- --data-dir ${empty}`);
    expect(r.stderr).toContain('pass the same --data-dir DIR or set VMMIG_DATA_DIR=DIR');
  });

  it('vmmig local on a port already in use names --port-base as the fix', async () => {
    const base = await findFreePort();
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(base, '127.0.0.1', r));
    try {
      const r = await t.vmmig([
        'local',
        '--no-agents',
        '--data-dir',
        join(empty, 'local'),
        '--port-base',
        String(base),
      ]);
      expect(r.code).toBe(EXIT.unavailable);
      expect(r.stderr).toContain(`port ${base} on 127.0.0.1 is already in use`);
      expect(r.stderr).toContain('--port-base N');
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
  });

  it('migrate --wait, status, status --watch and retry --wait: one summary, downloaded vs reused at the destination', async () => {
    const migrate = await t.vmmig([
      'migrate',
      '--vm',
      'web',
      '--image-id',
      'web.img',
      '--from',
      'dc-gz',
      '--to',
      'dc-osa',
      '--wait',
      '--no-json',
    ]);
    expect(migrate.code, migrate.stderr).toBe(EXIT.ok);
    const id = /migration (mig-\S+) started/.exec(migrate.stdout)?.[1] as string;
    const summary = migrate.stdout.slice(migrate.stdout.lastIndexOf('\nCOMPLETED in ') + 1);
    expect(summary).toMatch(
      /^COMPLETED in [\d.]+ s: image 8\.0 MiB, uploaded .*, downloaded .*, reused at the destination /,
    );
    expect(summary).toContain(`\n  dc-osa   COMPLETED   via nrt: downloaded `);
    expect(summary).toContain(`delivered ${image('dc-osa', 'web.img')} (raw)`);

    // status (not following): the same facts under the destination.
    const status = await t.vmmig(['status', id, '--no-json']);
    expect(status.stdout).toMatch(
      /dc-osa +COMPLETED[^\n]*\n +downloaded [^\n]*reused [^\n]* from images already at dc-osa/,
    );

    // status --watch ends with the same summary (how long it took is the command's to know: left out).
    const watch = await t.vmmig(['status', id, '--watch', '--no-json']);
    expect(watch.code).toBe(EXIT.ok);
    const watched = watch.stdout.slice(watch.stdout.lastIndexOf('\nCOMPLETED: ') + 1);
    expect(watched.split('\n').slice(1)).toEqual(summary.split('\n').slice(1));

    // retry --wait of a migration that failed (its image was not there yet) ends with it too.
    const failing = await t.vmmig([
      'migrate',
      '--vm',
      'late',
      '--image-id',
      'late.img',
      '--from',
      'dc-gz',
      '--to',
      'dc-sh',
      '--json',
    ]);
    expect(failing.code, failing.stderr).toBe(EXIT.ok);
    const lateId = (JSON.parse(failing.stdout) as { id: string }).id;
    expect((await waitForMigration(t.admin, lateId)).status).toBe('FAILED');
    await copyFile(image('dc-gz', 'web.img'), image('dc-gz', 'late.img'));
    const retry = await t.vmmig(['retry', lateId, '--wait', '--no-json']);
    expect(retry.code, retry.stderr).toBe(EXIT.ok);
    const retried = retry.stdout.slice(retry.stdout.lastIndexOf('\nCOMPLETED in ') + 1);
    expect(retried).toMatch(/^COMPLETED in [\d.]+ s: image 8\.0 MiB, .*reused at the destination /);
    expect(retried).toContain(`delivered ${image('dc-sh', 'late.img')} (raw)`);

    // Again to the same destination: the file there is the one vmmig delivered, so it is replaced, and the image
    // it holds is reused instead of downloaded.
    const again = await t.vmmig([
      'migrate',
      '--vm',
      'web',
      '--image-id',
      'web.img',
      '--from',
      'dc-gz',
      '--to',
      'dc-osa',
      '--wait',
      '--no-json',
    ]);
    expect(again.code, again.stderr).toBe(EXIT.ok);
    const replaced = again.stdout.slice(again.stdout.lastIndexOf('\nCOMPLETED in ') + 1);
    expect(replaced).toMatch(
      /, reused at the destination [1-9][\d.]* MiB; delivered image [\d.]+ (KiB|MiB) allocated on disk\n/,
    );
    expect(replaced).toContain(`replaced ${image('dc-osa', 'web.img')}`);
  });

  it('policy put --first-at sends firstRunAt; without it the first run is at once; a bad time names the flag', async () => {
    const common = [
      '--vm',
      'web',
      '--image-id',
      'web.img',
      '--from',
      'dc-gz',
      '--to',
      'dc-osa',
      '--every',
      '1d',
    ];
    // The API takes a first run within a year.
    const at = new Date(Math.floor(Date.now() / 1000) * 1000 + 30 * 86_400_000).toISOString();
    const later = await t.vmmig([
      'policy',
      'put',
      'nightly',
      ...common,
      '--first-at',
      at,
      '--disabled',
      '--json',
    ]);
    expect(later.code, later.stderr).toBe(EXIT.ok);
    expect((JSON.parse(later.stdout) as BackupPolicy).nextRunAt).toBe(at);
    const before = Date.now();
    const now = await t.vmmig(['policy', 'put', 'at-once', ...common, '--disabled', '--json']);
    expect(now.code, now.stderr).toBe(EXIT.ok);
    expect(Date.parse((JSON.parse(now.stdout) as BackupPolicy).nextRunAt)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse((JSON.parse(now.stdout) as BackupPolicy).nextRunAt)).toBeGreaterThanOrEqual(
      before - 1000,
    );
    const bad = await t.vmmig(['policy', 'put', 'bad', ...common, '--first-at', 'tomorrow']);
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toContain('error: --first-at tomorrow: expected an ISO 8601 time');
  });
});
