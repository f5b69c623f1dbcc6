// `vmmig migrate --batch FILE`: a file that cannot be used is a bad command line (exit 2) that names it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVms } from '../../../cli/commands/request.ts';
import { UsageError } from '../../../cli/config.ts';
import { EXIT } from '../../../cli/exit-codes.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmmig-batch-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const refusal = (file: string) => {
  try {
    parseVms(undefined, undefined, 'default', file);
  } catch (err) {
    return err as UsageError;
  }
  throw new Error('accepted');
};

describe('--batch FILE', () => {
  it('a missing file: usage error naming the file', () => {
    const file = join(dir, 'missing.txt');
    const err = refusal(file);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.exitCode).toBe(EXIT.usage);
    expect(err.message).toBe(`--batch ${file}: cannot read it (no such file, looked at ${file})`);
  });

  it('a directory, bad JSON, a "vms" that is no list, or no VMs at all: usage errors naming the file', async () => {
    expect(refusal(dir).message).toContain(`--batch ${dir}: cannot read it (is a directory`);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"vms": [');
    expect(refusal(bad).message).toMatch(new RegExp(`^--batch ${bad}: not valid JSON`));
    const notList = join(dir, 'not-list.json');
    await writeFile(notList, '{"vms": 5}');
    expect(refusal(notList).message).toBe(`--batch ${notList}: "vms" must be a list`);
    const empty = join(dir, 'empty.txt');
    await writeFile(empty, '# nothing yet\n');
    expect(refusal(empty).message).toMatch(new RegExp(`^--batch ${empty} names no VMs`));
  });

  it('reads both forms', async () => {
    const lines = join(dir, 'vms.txt');
    await writeFile(lines, 'web-01 web-01.qcow2\ndb-01 db-01.img host-2 # comment\n');
    expect(parseVms(undefined, undefined, 'h', lines)).toEqual([
      { vmId: 'web-01', imageId: 'web-01.qcow2', hostId: 'h' },
      { vmId: 'db-01', imageId: 'db-01.img', hostId: 'host-2' },
    ]);
    const json = join(dir, 'vms.json');
    await writeFile(json, '{"vms":[{"vmId":"a","imageId":"a.img"}]}');
    expect(parseVms(undefined, undefined, 'h', json)).toEqual([{ vmId: 'a', imageId: 'a.img', hostId: 'h' }]);
  });
});
