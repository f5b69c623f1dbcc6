// VM disk image formats (qemu-img's names) and detection from an image's first and last bytes.
// Detection only suggests: a guest controls the bytes of a raw disk, so a declared format always wins and
// qemu-img must be run with an explicit -f (never let it probe a raw image into qcow2 with a backing file).
import { open } from 'node:fs/promises';
import { extname } from 'node:path';

export const IMAGE_FORMATS = ['raw', 'qcow2', 'vmdk', 'vhdx', 'vpc'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** File extensions by format, the usual one first. */
export const IMAGE_FORMAT_EXTENSIONS: Readonly<Record<ImageFormat, readonly string[]>> = {
  raw: ['.raw', '.img'],
  qcow2: ['.qcow2'],
  vmdk: ['.vmdk'],
  vhdx: ['.vhdx'],
  vpc: ['.vhd'],
};

export function isImageFormat(value: string): value is ImageFormat {
  return (IMAGE_FORMATS as readonly string[]).includes(value);
}

/** The usual file extension for a format, with its dot. */
export function extensionFor(format: ImageFormat): string {
  return IMAGE_FORMAT_EXTENSIONS[format][0] as string;
}

/** The format a file name's extension suggests, if any (case-insensitive). */
export function formatFromExtension(fileName: string): ImageFormat | undefined {
  const ext = extname(fileName).toLowerCase();
  return IMAGE_FORMATS.find((f) => IMAGE_FORMAT_EXTENSIONS[f].includes(ext));
}

/** How many bytes detection wants from the start and from the end of an image. */
export const HEAD_BYTES = 4096;
export const TAIL_BYTES = 512;

const ascii = (s: string) => Uint8Array.from(s, (ch) => ch.charCodeAt(0));
const QCOW2_MAGIC = ascii('QFI\xfb');
const VMDK_SPARSE_MAGIC = ascii('KDMV');
const VMDK_DESCRIPTOR = ascii('# Disk DescriptorFile');
const VHDX_MAGIC = ascii('vhdxfile');
const VHD_COOKIE = ascii('conectix');

function startsWith(bytes: Uint8Array, at: number, magic: Uint8Array): boolean {
  if (at < 0 || bytes.length < at + magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (bytes[at + i] !== magic[i]) return false;
  return true;
}

/** Where the VHD footer starts in `tail`, if there is one (the last 512 bytes; some old tools wrote 511). */
function vhdFooterAt(tail: Uint8Array): number | undefined {
  for (const size of [512, 511]) {
    if (startsWith(tail, tail.length - size, VHD_COOKIE)) return tail.length - size;
  }
  return undefined;
}

/**
 * The format of an image from its first bytes (`head`, HEAD_BYTES is plenty) and last bytes (`tail`, the last
 * TAIL_BYTES, needed for fixed VHD whose only signature is its footer). Anything unrecognised is raw.
 */
export function detectImageFormat(head: Uint8Array, tail?: Uint8Array): ImageFormat {
  if (startsWith(head, 0, QCOW2_MAGIC)) return 'qcow2';
  if (startsWith(head, 0, VHDX_MAGIC)) return 'vhdx';
  if (startsWith(head, 0, VMDK_SPARSE_MAGIC) || startsWith(head, 0, VMDK_DESCRIPTOR)) return 'vmdk';
  // A dynamic VHD starts with a copy of its footer.
  if (startsWith(head, 0, VHD_COOKIE)) return 'vpc';
  if (tail !== undefined && vhdFooterAt(tail) !== undefined) return 'vpc';
  return 'raw';
}

/**
 * Whether the image depends on a parent image (qcow2 backing file, differencing VHD, VMDK delta link): such an
 * image is useless moved alone. Undefined when these bytes cannot tell (VHDX, sparse VMDK).
 */
export function dependsOnParent(
  format: ImageFormat,
  head: Uint8Array,
  tail?: Uint8Array,
): boolean | undefined {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  switch (format) {
    case 'raw':
      return false;
    case 'qcow2':
      // backing_file_offset, bytes 8-15, big-endian; 0 without a backing file.
      return head.length >= 16 ? view.getBigUint64(8) !== 0n : undefined;
    case 'vpc': {
      // Disk type at footer offset 60: 2 fixed, 3 dynamic, 4 differencing.
      const footer = tail !== undefined ? vhdFooterAt(tail) : undefined;
      const bytes = footer !== undefined ? (tail as Uint8Array) : head;
      const at = footer ?? 0;
      if (!startsWith(bytes, at, VHD_COOKIE) || bytes.length < at + 64) return undefined;
      return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at + 60) === 4;
    }
    case 'vmdk': {
      if (!startsWith(head, 0, VMDK_DESCRIPTOR)) return undefined;
      const text = new TextDecoder('latin1').decode(head);
      const parent = /^\s*parentCID\s*=\s*([0-9a-fA-F]+)\s*$/m.exec(text)?.[1];
      return (
        (parent !== undefined && parent.toLowerCase() !== 'ffffffff') ||
        /^\s*parentFileNameHint\s*=/m.test(text)
      );
    }
    case 'vhdx':
      return undefined;
  }
}

export interface ImageSignature {
  readonly size: number;
  readonly head: Uint8Array;
  readonly tail: Uint8Array;
}

/** Reads the first HEAD_BYTES and last TAIL_BYTES of an image file. */
export async function readImageSignature(path: string): Promise<ImageSignature> {
  const file = await open(path, 'r');
  try {
    const { size } = await file.stat();
    const head = new Uint8Array(Math.min(HEAD_BYTES, size));
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    const tailLength = Math.min(TAIL_BYTES, size);
    const tail = new Uint8Array(tailLength);
    const t = await file.read(tail, 0, tailLength, size - tailLength);
    return { size, head: head.subarray(0, bytesRead), tail: tail.subarray(0, t.bytesRead) };
  } finally {
    await file.close();
  }
}

/** Detects the format of an image file from its signature bytes. */
export async function detectImageFileFormat(path: string): Promise<ImageFormat> {
  const { head, tail } = await readImageSignature(path);
  return detectImageFormat(head, tail);
}
