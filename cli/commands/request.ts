// Turning command-line flags into API request bodies.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { IMAGE_FORMATS, type ImageFormat } from '../../protocol/image-format.ts';
import { UsageError } from '../config.ts';

export interface VmRef {
  readonly vmId: string;
  readonly imageId: string;
  readonly hostId: string;
}

/** `--to dc-osa` or `--to dc-osa:qcow2` (convert to qcow2 there). */
export function parseDestination(text: string): { dataCenterId: string; format?: ImageFormat } {
  const [dataCenterId = '', format] = text.split(':');
  if (format !== undefined && !(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--to ${text}: unknown format "${format}" (one of ${IMAGE_FORMATS.join(', ')})`);
  }
  return { dataCenterId, ...(format ? { format: format as ImageFormat } : {}) };
}

/** `--near 34.69,135.50` or `--near 34.69,135.50:qcow2`. */
export function parseNear(text: string): { lat: number; lon: number; format?: ImageFormat } {
  const [coords = '', format] = text.split(':');
  const [lat, lon] = coords.split(',').map(Number);
  if (lat === undefined || lon === undefined || Number.isNaN(lat) || Number.isNaN(lon)) {
    throw new UsageError(`--near ${text}: expected LAT,LON such as 34.69,135.50`);
  }
  if (format !== undefined && !(IMAGE_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--near ${text}: unknown format "${format}"`);
  }
  return { lat, lon, ...(format ? { format: format as ImageFormat } : {}) };
}

/**
 * The VMs of a request: `--vm ID --image-id FILE` for one, `--vm ID=FILE` repeated for several, or `--batch
 * FILE` (JSON `{ "vms": [{ "vmId", "imageId", "hostId"? }] }`, or lines `vmId imageId [hostId]`).
 */
export function parseVms(
  vm: string[] | undefined,
  imageId: string | undefined,
  host: string,
  batchFile?: string,
): VmRef[] {
  const out: VmRef[] = [];
  if (batchFile) {
    const text = readBatchFile(batchFile);
    if (text.trimStart().startsWith('{') || text.trimStart().startsWith('[')) {
      let parsed: { vms?: Partial<VmRef>[] } | Partial<VmRef>[];
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch (err) {
        throw new UsageError(`--batch ${batchFile}: not valid JSON (${(err as Error).message})`);
      }
      const list: unknown = Array.isArray(parsed) ? parsed : (parsed?.vms ?? []);
      if (!Array.isArray(list)) throw new UsageError(`--batch ${batchFile}: "vms" must be a list`);
      for (const [i, v] of (list as (Partial<VmRef> | null)[]).entries()) {
        if (!v?.vmId || !v.imageId) throw new UsageError(`${batchFile}: entry ${i} needs vmId and imageId`);
        out.push({ vmId: v.vmId, imageId: v.imageId, hostId: v.hostId ?? host });
      }
    } else {
      for (const [n, line] of text.split('\n').entries()) {
        const words = line.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
        if (words.length === 0) continue;
        if (words.length < 2) throw new UsageError(`${batchFile}:${n + 1}: expected "vmId imageId [hostId]"`);
        out.push({ vmId: words[0] as string, imageId: words[1] as string, hostId: words[2] ?? host });
      }
    }
    if (out.length === 0)
      throw new UsageError(
        `--batch ${batchFile} names no VMs: JSON {"vms":[{"vmId","imageId","hostId"?}]} or lines "vmId imageId [hostId]"`,
      );
  }
  for (const v of vm ?? []) {
    const [vmId = '', image] = v.split('=');
    const resolved = image ?? imageId;
    if (!resolved)
      throw new UsageError(`--vm ${v}: give --image-id, or write --vm ${v}=IMAGE for several VMs`);
    out.push({ vmId, imageId: resolved, hostId: host });
  }
  if (out.length === 0)
    throw new UsageError('name the VM: --vm ID --image-id FILE, --vm ID=FILE (repeatable) or --batch FILE');
  return out;
}

/** The text of a --batch file; a file that cannot be read is a bad command line (exit 2) naming it and why. */
function readBatchFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EISDIR'
          ? 'is a directory'
          : e.code === 'EACCES'
            ? 'permission denied'
            : e.message;
    throw new UsageError(`--batch ${file}: cannot read it (${why}, looked at ${resolve(file)})`);
  }
}

/** `90s`, `15m`, `24h`, `7d`, or minutes as a number. */
export function parseInterval(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`"${text}" is not an interval: use e.g. 30m, 6h, 1d`);
  const n = Number(m[1]);
  const minutes = { s: n / 60, m: n, h: n * 60, d: n * 1440, '': n }[m[2] as 's' | 'm' | 'h' | 'd' | ''];
  if (!Number.isInteger(minutes) || minutes < 1)
    throw new UsageError(`interval ${text}: policies run every whole number of minutes (1m or more)`);
  return minutes;
}
