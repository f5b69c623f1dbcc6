// Rendering migration progress: bars on a terminal, one JSON line per update otherwise.
import type { Migration } from '../protocol/api/migrations.ts';

export const formatBytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
};

const bar = (done: number, total: number, width = 24): string => {
  const ratio = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%`;
};

/** Lines describing a migration's state, for a terminal. */
export function describe(m: Migration): string[] {
  const lines = [`${m.id}  ${m.status}  vm ${m.vmId}  image ${m.imageId}  attempt ${m.attempt}`];
  if (m.image) {
    lines.push(
      `  image    ${m.image.format}, ${formatBytes(m.image.size)}, ${m.image.chunks} chunks (${m.image.uniqueChunks} distinct), ${formatBytes(m.image.zeroBytes)} zeros`,
    );
  }
  const u = m.upload;
  lines.push(
    `  upload   ${bar(u.bytesDone, u.bytesTotal)} ${formatBytes(u.bytesDone)} / ${formatBytes(u.bytesTotal)} from ${m.sourceDataCenterId}` +
      `${m.sourceCacheNodeId ? ` to ${m.sourceCacheNodeId}` : ''}; ${formatBytes(u.bytesCached)} already cached`,
  );
  for (const leg of m.legs) {
    const dl = m.image ? m.image.size - m.image.zeroBytes : 0;
    lines.push(
      `  ${leg.dataCenterId.padEnd(8)} ${leg.status.padEnd(11)} via ${leg.cacheNodeId ?? '-'}  ` +
        `replicate ${bar(leg.bytesReplicated, leg.bytesToReplicate, 12)}  download ${bar(leg.bytesDownloaded, dl, 12)}` +
        (leg.error ? `\n           ${leg.error}` : ''),
    );
  }
  if (m.error) lines.push(`  error    ${m.error.code}: ${m.error.message}`);
  return lines;
}

export class LiveView {
  private lastLines = 0;
  constructor(private readonly tty: boolean) {}

  update(m: Migration): void {
    if (!this.tty) {
      process.stdout.write(`${JSON.stringify(summaryLine(m))}\n`);
      return;
    }
    const lines = describe(m);
    if (this.lastLines > 0) process.stdout.write(`\x1b[${this.lastLines}F\x1b[0J`);
    process.stdout.write(`${lines.join('\n')}\n`);
    this.lastLines = lines.join('\n').split('\n').length;
  }
}

export function summaryLine(m: Migration) {
  return {
    id: m.id,
    status: m.status,
    upload: {
      bytesDone: m.upload.bytesDone,
      bytesTotal: m.upload.bytesTotal,
      bytesCached: m.upload.bytesCached,
    },
    legs: m.legs.map((l) => ({
      dataCenterId: l.dataCenterId,
      status: l.status,
      bytesReplicated: l.bytesReplicated,
      bytesToReplicate: l.bytesToReplicate,
      bytesDownloaded: l.bytesDownloaded,
    })),
    ...(m.error ? { error: m.error } : {}),
    updatedAt: m.updatedAt,
  };
}
