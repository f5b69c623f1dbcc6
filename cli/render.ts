// Rendering migration progress: bars on a terminal, one JSON line per update otherwise.
import type { Batch } from '../protocol/api/batches.ts';
import type { Leg, Migration } from '../protocol/api/migrations.ts';
import { formatBytes } from '../protocol/bytes.ts';

export { formatBytes };

const bar = (done: number, total: number, width = 24): string => {
  const ratio = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%`;
};

/** Lines describing a migration's state, for a terminal. */
export function describe(m: Migration): string[] {
  const lines = [`${m.id}  ${m.status}  ${m.mode}  vm ${m.vmId}  image ${m.imageId}  attempt ${m.attempt}`];
  if (m.placement) {
    lines.push(
      `  near     (${m.placement.near.lat}, ${m.placement.near.lon}): ${m.placement.dataCenterId}, ${m.placement.distanceKm} km`,
    );
  }
  if (m.decision) {
    lines.push(`  decide   ${m.decision.reason}`);
    lines.push(
      `           vmmig decide ${m.id} --accept   (go to ${m.decision.suggestedDataCenterId})  or  --reject   (wait)`,
    );
  }
  if (m.image) {
    lines.push(
      `  image    ${m.image.format}, ${formatBytes(m.image.size)}, ${m.image.chunks} chunks (${m.image.uniqueChunks} distinct), ${formatBytes(m.image.zeroBytes)} zeros`,
    );
  }
  const u = m.upload;
  const from = `from ${m.sourceDataCenterId}${m.sourceCacheNodeId ? ` to ${m.sourceCacheNodeId}` : ''}`;
  if (isLocalOnly(m)) {
    lines.push(`  upload   none: the image stays in ${m.sourceDataCenterId}, no cache node is involved`);
  } else if (!m.image) {
    lines.push(`  upload   waiting for the source's manifest`);
  } else if (u.bytesTotal === 0) {
    lines.push(`  upload   nothing to upload ${from}: ${formatBytes(u.bytesCached)} already cached`);
  } else {
    lines.push(
      `  upload   ${bar(u.bytesDone, u.bytesTotal)} ${formatBytes(u.bytesDone)} / ${formatBytes(u.bytesTotal)} ${from}` +
        `${u.wireBytesDone ? ` (${formatBytes(u.wireBytesDone)} sent)` : ''}; ` +
        `${formatBytes(u.bytesCached)} already cached${u.chunksShared ? `, ${u.chunksShared} chunks shared with other migrations` : ''}`,
    );
  }
  if (m.image && !isLocalOnly(m)) {
    const r = m.replication;
    lines.push(
      `  copies   ${formatBytes(r.bytesCopied)} in ${r.chunksCopied} chunks copied between cache nodes by this migration`,
    );
  }
  for (const leg of m.legs) {
    const dl = m.image ? m.image.size - m.image.zeroBytes : 0;
    if (leg.local) {
      lines.push(
        `  ${leg.dataCenterId.padEnd(8)} ${leg.status.padEnd(11)} local handover${leg.error ? `\n           ${leg.error}` : ''}`,
      );
      const outcome = legOutcome(leg);
      if (outcome) lines.push(`           ${outcome}`);
      continue;
    }
    lines.push(
      `  ${leg.dataCenterId.padEnd(8)} ${leg.status.padEnd(11)} via ${leg.cacheNodeId ?? '-'}${leg.format ? ` as ${leg.format}` : ''}  ` +
        (leg.status === 'PENDING'
          ? 'waiting'
          : `replicate ${bar(leg.bytesReplicated, leg.bytesToReplicate, 12)}  download ${bar(leg.bytesDownloaded + (leg.bytesReusedAtDestination ?? 0), dl, 12)}`) +
        (leg.error ? `\n           ${leg.error}` : ''),
    );
    const outcome = legOutcome(leg);
    if (outcome) lines.push(`           ${outcome}`);
  }
  if (m.error) lines.push(`  error    ${m.error.code}: ${m.error.message}`);
  return lines;
}

/**
 * What a destination ended with, as far as the record knows (older records lack the reuse, allocation and
 * replacement facts): bytes downloaded vs reused from images already at the destination, where the image is, the
 * disk space it takes, and the file it replaced. Undefined when there is nothing to say yet.
 */
export function legOutcome(leg: Leg): string | undefined {
  const moved: string[] = [];
  if (!leg.local && (leg.status === 'COMPLETED' || leg.bytesDownloaded > 0))
    moved.push(
      `downloaded ${formatBytes(leg.bytesDownloaded)}` +
        (leg.wireBytesDownloaded ? ` (${formatBytes(leg.wireBytesDownloaded)} fetched)` : ''),
    );
  if (!leg.local && leg.bytesReusedAtDestination !== undefined)
    moved.push(
      `reused ${formatBytes(leg.bytesReusedAtDestination)} from images already at ${leg.dataCenterId}`,
    );
  const where: string[] = [];
  if (leg.deliveredPath)
    where.push(`delivered ${leg.deliveredPath}${leg.deliveredFormat ? ` (${leg.deliveredFormat})` : ''}`);
  if (leg.allocatedBytes !== undefined) where.push(`${formatBytes(leg.allocatedBytes)} allocated on disk`);
  const parts = [moved.join(', '), where.join(', ')];
  if (leg.replaced) parts.push(`replaced ${leg.deliveredPath ?? 'the file that was there'}`);
  const text = parts.filter(Boolean).join('; ');
  return text || undefined;
}

/**
 * The closing lines of a migration that ended (`migrate --wait`, `retry --wait`, `status --watch`): what was
 * uploaded, copied between cache nodes, downloaded and reused at the destinations, then one line per destination.
 * `seconds`: how long the command followed it (left out when unknown).
 */
export function migrationSummary(m: Migration, seconds?: number): string[] {
  const head = `${m.status}${seconds === undefined ? '' : ` in ${seconds.toFixed(1)} s`}`;
  const legs = m.legs.map((l) => {
    const outcome = legOutcome(l);
    const text = [outcome, l.error].filter(Boolean).join('; ');
    return `  ${l.dataCenterId.padEnd(8)} ${l.status.padEnd(11)} ${l.local ? 'local handover' : `via ${l.cacheNodeId ?? '-'}`}${text ? `: ${text}` : ''}`;
  });
  if (isLocalOnly(m))
    return [`${head}: local handover within ${m.sourceDataCenterId}, nothing transferred`, ...legs];
  const remote = m.legs.filter((l) => !l.local);
  const downloaded = remote.reduce((n, l) => n + l.bytesDownloaded, 0);
  const reusedKnown = remote.some((l) => l.bytesReusedAtDestination !== undefined);
  const reused = remote.reduce((n, l) => n + (l.bytesReusedAtDestination ?? 0), 0);
  const allocatedLegs = m.legs.filter((l) => l.allocatedBytes !== undefined);
  const allocated = allocatedLegs.reduce((n, l) => n + (l.allocatedBytes ?? 0), 0);
  return [
    `${head}: image ${formatBytes(m.image?.size ?? 0)}, uploaded ${formatBytes(m.upload.bytesDone)}, ` +
      `copied between cache nodes ${formatBytes(m.replication.bytesCopied)}, downloaded ${formatBytes(downloaded)}` +
      (reusedKnown
        ? `, reused at the destination${remote.length > 1 ? 's' : ''} ${formatBytes(reused)}`
        : '') +
      (allocatedLegs.length > 0
        ? `; delivered image${allocatedLegs.length > 1 ? 's' : ''} ${formatBytes(allocated)} allocated on disk`
        : ''),
    ...legs,
  ];
}

/** The closing line of a batch that ended (`migrate --batch --wait`, `status --watch batch-…`). */
export function batchSummary(b: Batch, seconds?: number): string[] {
  return [
    `${b.status}${seconds === undefined ? '' : ` in ${seconds.toFixed(1)} s`}: ${formatBytes(b.bytes.image)} of images, ` +
      `uploaded ${formatBytes(b.bytes.uploaded)} (${b.bytes.shared} shared chunks sent once), ` +
      `copied between cache nodes ${formatBytes(b.bytes.copied)}, downloaded ${formatBytes(b.bytes.downloaded)}`,
  ];
}

/** Every destination is the source's own data center: a local handover (draft §3.1 step 2), nothing moves. */
export const isLocalOnly = (m: Migration): boolean => m.legs.length > 0 && m.legs.every((l) => l.local);

/** Lines describing a batch: the roll-up, then one line per VM. */
export function describeBatch(b: Batch): string[] {
  const counts = Object.entries(b.counts)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  const lines = [
    `${b.id}  ${b.status}  ${b.total} VMs ${b.sourceDataCenterId} -> ${b.destinations.join(', ')}  (${counts})`,
    `  bytes    images ${formatBytes(b.bytes.image)}, uploaded ${formatBytes(b.bytes.uploaded)}, cached ${formatBytes(b.bytes.cached)}, ` +
      `copied between cache nodes ${formatBytes(b.bytes.copied)}, downloaded ${formatBytes(b.bytes.downloaded)}; ${b.bytes.shared} shared chunks sent once`,
  ];
  if (b.slowest && b.status === 'RUNNING') {
    lines.push(
      `  slowest  ${b.slowest.vmId} (${b.slowest.migrationId}) ${b.slowest.status} ${(b.slowest.progress * 100).toFixed(0)}%`,
    );
  }
  for (const m of b.migrations) {
    lines.push(`  ${m.vmId.padEnd(16)} ${m.status.padEnd(17)} ${bar(m.progress, 1, 20)}  ${m.id}`);
  }
  return lines;
}

export class LiveView {
  private lastLines = 0;
  /** `human`: text (redrawn in place on a terminal, appended otherwise); else one JSON line per update. */
  constructor(
    private readonly human: boolean,
    private readonly redraw: boolean = process.stdout.isTTY === true,
  ) {}

  /** Shows `lines` (human) or prints `json` as one line. */
  update(lines: string[], json: unknown): void {
    if (!this.human) {
      process.stdout.write(`${JSON.stringify(json)}\n`);
      return;
    }
    const text = lines.join('\n');
    if (this.redraw && this.lastLines > 0) process.stdout.write(`\x1b[${this.lastLines}F\x1b[0J`);
    process.stdout.write(`${text}\n`);
    this.lastLines = text.split('\n').length;
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
      ...(m.upload.wireBytesDone !== undefined ? { wireBytesDone: m.upload.wireBytesDone } : {}),
    },
    legs: m.legs.map((l) => ({
      dataCenterId: l.dataCenterId,
      status: l.status,
      bytesReplicated: l.bytesReplicated,
      bytesToReplicate: l.bytesToReplicate,
      bytesDownloaded: l.bytesDownloaded,
      ...(l.wireBytesDownloaded !== undefined ? { wireBytesDownloaded: l.wireBytesDownloaded } : {}),
      ...(l.bytesReusedAtDestination !== undefined
        ? { bytesReusedAtDestination: l.bytesReusedAtDestination }
        : {}),
      ...(l.allocatedBytes !== undefined ? { allocatedBytes: l.allocatedBytes } : {}),
      ...(l.replaced ? { replaced: true, deliveredPath: l.deliveredPath } : {}),
    })),
    ...(m.error ? { error: m.error } : {}),
    updatedAt: m.updatedAt,
  };
}
