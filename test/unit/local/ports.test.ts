import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { findFreePort } from '../../../local/ports.ts';

const run = promisify(execFile);

describe('findFreePort', () => {
  it('never hands the same port out twice while it is claimed, in one process', async () => {
    const ports = await Promise.all(Array.from({ length: 200 }, () => findFreePort()));
    expect(new Set(ports).size).toBe(ports.length);
  });

  it('respects the ports other processes were handed', async () => {
    const script =
      "import('./local/ports.ts').then(async (m) => { const p = []; for (let i = 0; i < 150; i++) p.push(await m.findFreePort()); console.log(JSON.stringify(p)); })";
    const child = (async () => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', '-e', script], {
        cwd: process.cwd(),
      });
      return JSON.parse(stdout) as number[];
    })();
    const mine: number[] = [];
    for (let i = 0; i < 150; i++) mine.push(await findFreePort());
    const theirs = await child;
    expect(theirs).toHaveLength(150);
    expect(mine.filter((port) => theirs.includes(port))).toEqual([]);
  });
});
