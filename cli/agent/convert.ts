// Cross-hypervisor delivery (draft Table 1: a Xen host's image to a KVM host): convert a verified image with
// qemu-img. The source format is the one the manifest declares, never guessed from the bytes: a guest controls
// the bytes of a raw disk and could forge a header pointing qemu-img at host files.
import { rm } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { findQemu, QEMU_MISSING, qemuImg } from '../../local/qemu.ts';
import { IMAGE_FORMAT_EXTENSIONS, type ImageFormat } from '../../protocol/image-format.ts';
import { JobFailure } from './context.ts';

/**
 * Where an image delivered in another format goes: `web-01.vhd` as qcow2 → `web-01.qcow2` in the same directory;
 * a name whose extension already is the target's, or that has none, gets the target's extension appended.
 */
export function convertedPath(path: string, to: ImageFormat): string {
  const ext = extname(path);
  const known = Object.values(IMAGE_FORMAT_EXTENSIONS).some((list) => list.includes(ext.toLowerCase()));
  const stem = known ? basename(path, ext) : basename(path);
  const target = join(dirname(path), `${stem}${IMAGE_FORMAT_EXTENSIONS[to][0]}`);
  return target === path ? `${path}.${to}` : target;
}

/** Converts `input` into a new file `output` (removed again when qemu-img fails); `input` is left as it is. */
export async function convertImage(
  input: string,
  from: ImageFormat,
  to: ImageFormat,
  output: string,
): Promise<void> {
  if (!(await findQemu())) throw new JobFailure(`cannot convert ${from} to ${to}: ${QEMU_MISSING}`);
  await rm(output, { force: true });
  try {
    await qemuImg(['convert', '-f', from, '-O', to, input, output]);
  } catch (err) {
    await rm(output, { force: true });
    throw new JobFailure(`qemu-img convert ${from} → ${to} failed: ${(err as Error).message.slice(0, 500)}`);
  }
}
