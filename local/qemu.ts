// qemu-img and qemu-io are optional: found on PATH when present, with a clear message when absent.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface QemuTools {
  readonly qemuImg: string;
  readonly qemuIo: string | undefined;
  readonly version: string;
}

export const QEMU_MISSING =
  'qemu-img not found: install it (Debian/Ubuntu: apt-get install qemu-utils; macOS: brew install qemu) for qcow2 images and format conversion';

async function which(cmd: string): Promise<string | undefined> {
  try {
    const { stdout } = await run('sh', ['-c', `command -v ${cmd}`]);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

let cached: Promise<QemuTools | undefined> | undefined;

export function findQemu(): Promise<QemuTools | undefined> {
  cached ??= (async () => {
    const qemuImg = await which('qemu-img');
    if (!qemuImg) return undefined;
    const { stdout } = await run(qemuImg, ['--version']);
    return {
      qemuImg,
      qemuIo: await which('qemu-io'),
      version: /version ([\d.]+)/.exec(stdout)?.[1] ?? 'unknown',
    };
  })();
  return cached;
}

export async function qemuImg(args: readonly string[]): Promise<string> {
  const tools = await findQemu();
  if (!tools) throw new Error(QEMU_MISSING);
  const { stdout } = await run(tools.qemuImg, [...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

export async function qemuIo(args: readonly string[]): Promise<string> {
  const tools = await findQemu();
  if (!tools?.qemuIo) throw new Error(QEMU_MISSING.replace('qemu-img', 'qemu-io'));
  const { stdout } = await run(tools.qemuIo, [...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}
