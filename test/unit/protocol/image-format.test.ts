import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dependsOnParent,
  detectImageFileFormat,
  detectImageFormat,
  extensionFor,
  formatFromExtension,
  IMAGE_FORMAT_EXTENSIONS,
  IMAGE_FORMATS,
  isImageFormat,
  readImageSignature,
} from '../../../protocol/image-format.ts';

const bytes = (s: string, size = 4096) => {
  const out = new Uint8Array(size);
  out.set(Uint8Array.from(s, (ch) => ch.charCodeAt(0)));
  return out;
};

function qcow2Header(backingFileOffset = 0n): Uint8Array {
  const head = bytes('QFI\xfb');
  const view = new DataView(head.buffer);
  view.setUint32(4, 3);
  view.setBigUint64(8, backingFileOffset);
  view.setUint32(20, 16);
  return head;
}

/** A 512-byte VHD footer with the given disk type (2 fixed, 3 dynamic, 4 differencing). */
function vhdFooter(diskType: number): Uint8Array {
  const footer = bytes('conectix', 512);
  new DataView(footer.buffer).setUint32(60, diskType);
  return footer;
}

describe('detectImageFormat', () => {
  it('recognises each format by its signature', () => {
    expect(detectImageFormat(qcow2Header())).toBe('qcow2');
    expect(detectImageFormat(bytes('KDMV\x01\x00\x00\x00'))).toBe('vmdk');
    expect(detectImageFormat(bytes('# Disk DescriptorFile\nversion=1\n'))).toBe('vmdk');
    expect(detectImageFormat(bytes('vhdxfile'))).toBe('vhdx');
    expect(detectImageFormat(vhdFooter(3))).toBe('vpc');
  });

  it('finds a fixed VHD by its footer at the end', () => {
    const head = new Uint8Array(4096);
    expect(detectImageFormat(head, vhdFooter(2))).toBe('vpc');
    // Some old tools wrote a 511-byte footer.
    expect(detectImageFormat(head, vhdFooter(2).subarray(0, 511))).toBe('vpc');
    const tail = new Uint8Array(512);
    tail.set(bytes('conectix', 8), 100);
    expect(detectImageFormat(head, tail)).toBe('raw');
  });

  it('calls anything else raw', () => {
    expect(detectImageFormat(new Uint8Array(0))).toBe('raw');
    expect(detectImageFormat(bytes('QFI'), new Uint8Array(0))).toBe('raw');
    const mbr = new Uint8Array(4096);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    expect(detectImageFormat(mbr, new Uint8Array(512))).toBe('raw');
    expect(detectImageFormat(bytes(' QFI\xfb'))).toBe('raw');
  });
});

describe('dependsOnParent', () => {
  it('sees a qcow2 backing file', () => {
    expect(dependsOnParent('qcow2', qcow2Header())).toBe(false);
    expect(dependsOnParent('qcow2', qcow2Header(0x200n))).toBe(true);
  });

  it('sees a differencing VHD from either copy of the footer', () => {
    expect(dependsOnParent('vpc', new Uint8Array(4096), vhdFooter(2))).toBe(false);
    expect(dependsOnParent('vpc', new Uint8Array(4096), vhdFooter(4))).toBe(true);
    expect(dependsOnParent('vpc', vhdFooter(4))).toBe(true);
    expect(dependsOnParent('vpc', new Uint8Array(4096))).toBeUndefined();
  });

  it('reads a VMDK descriptor', () => {
    expect(dependsOnParent('vmdk', bytes('# Disk DescriptorFile\nCID=12345678\nparentCID=ffffffff\n'))).toBe(
      false,
    );
    expect(
      dependsOnParent(
        'vmdk',
        bytes('# Disk DescriptorFile\nparentCID=1a2b3c4d\nparentFileNameHint="base.vmdk"\n'),
      ),
    ).toBe(true);
    expect(dependsOnParent('vmdk', bytes('KDMV'))).toBeUndefined();
  });

  it('says raw never depends on a parent and VHDX cannot be told from these bytes', () => {
    expect(dependsOnParent('raw', new Uint8Array(0))).toBe(false);
    expect(dependsOnParent('vhdx', bytes('vhdxfile'))).toBeUndefined();
  });
});

describe('formats and extensions', () => {
  it('lists the formats with an extension each', () => {
    expect(IMAGE_FORMATS).toEqual(['raw', 'qcow2', 'vmdk', 'vhdx', 'vpc']);
    for (const f of IMAGE_FORMATS) {
      expect(IMAGE_FORMAT_EXTENSIONS[f].length).toBeGreaterThan(0);
      expect(formatFromExtension(`disk${extensionFor(f)}`)).toBe(f);
    }
    expect(extensionFor('vpc')).toBe('.vhd');
    expect(formatFromExtension('WEB-01.QCOW2')).toBe('qcow2');
    expect(formatFromExtension('disk.img')).toBe('raw');
    expect(formatFromExtension('disk.iso')).toBeUndefined();
    expect(isImageFormat('vhdx')).toBe(true);
    expect(isImageFormat('vhd')).toBe(false);
  });
});

describe('image files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'image-format-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the head and tail of a file and detects its format', async () => {
    const fixedVhd = new Uint8Array(1024 * 1024 + 512);
    fixedVhd.set(vhdFooter(2), 1024 * 1024);
    const path = join(dir, 'disk.vhd');
    await writeFile(path, fixedVhd);
    const sig = await readImageSignature(path);
    expect([sig.size, sig.head.length, sig.tail.length]).toEqual([fixedVhd.length, 4096, 512]);
    expect(await detectImageFileFormat(path)).toBe('vpc');

    const small = join(dir, 'small.qcow2');
    await writeFile(small, qcow2Header().subarray(0, 100));
    expect(await detectImageFileFormat(small)).toBe('qcow2');
    const empty = join(dir, 'empty.raw');
    await writeFile(empty, new Uint8Array(0));
    expect(await detectImageFileFormat(empty)).toBe('raw');
  });
});
