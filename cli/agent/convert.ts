// Cross-hypervisor delivery (draft Table 1: a Xen host's image to a KVM host): convert a verified image with
// qemu-img. The source format is the one the manifest declares, never guessed from the bytes: a guest controls
// the bytes of a raw disk and could forge a header pointing qemu-img at host files.
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { findQemu, QEMU_MISSING, qemuImg } from '../../local/qemu.ts';
import { IMAGE_FORMAT_EXTENSIONS, type ImageFormat } from '../../protocol/image-format.ts';
import { JobFailure } from './context.ts';

/** `web-01.vhd` as qcow2 → `web-01.qcow2` in the same directory. */
export function convertedPath(path: string, to: ImageFormat): string {
  const ext = extname(path);
  const known = Object.values(IMAGE_FORMAT_EXTENSIONS).some((list) => list.includes(ext.toLowerCase()));
  const stem = known ? basename(path, ext) : basename(path);
  return join(dirname(path), `${stem}${IMAGE_FORMAT_EXTENSIONS[to][0]}`);
}

export async function convertImage(path: string, from: ImageFormat, to: ImageFormat): Promise<string> {
  if (!(await findQemu())) throw new JobFailure(`cannot convert ${from} to ${to}: ${QEMU_MISSING}`);
  let target = convertedPath(path, to);
  if (target === path) target = `${path}.${to}`;
  const partial = `${target}.converting`;
  try {
    await qemuImg(['convert', '-f', from, '-O', to, path, partial]);
  } catch (err) {
    await rm(partial, { force: true });
    throw new JobFailure(`qemu-img convert ${from} → ${to} failed: ${(err as Error).message.slice(0, 500)}`);
  }
  await rename(partial, target);
  return target;
}
