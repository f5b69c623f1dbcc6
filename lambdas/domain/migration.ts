// The migration record and its rules: ids, statuses, legs, progress. Pure; the store persists it.
import { randomBytes } from 'node:crypto';
import type { HistoryEntry, LegStatus, MigrationStatus } from '../../protocol/api/migrations.ts';
import { TERMINAL_STATUSES } from '../../protocol/api/migrations.ts';
import type { ImageFormat } from '../../protocol/image-format.ts';

export interface LegRecord {
  readonly dataCenterId: string;
  readonly cacheNodeId?: string;
  /** Same data center as the source: a local handover, no cache node. */
  readonly local: boolean;
  /** The format asked for at this destination. */
  readonly format?: ImageFormat;
  readonly deliveredPath?: string;
  readonly deliveredFormat?: ImageFormat;
  readonly allocatedBytes?: number;
  /** A file was at deliveredPath before and was replaced. */
  readonly replaced?: boolean;
  readonly bytesReusedAtDestination?: number;
  readonly status: LegStatus;
  readonly chunksToReplicate: number;
  readonly bytesToReplicate: number;
  readonly chunksReplicated: number;
  readonly bytesReplicated: number;
  readonly chunksDownloaded: number;
  readonly bytesDownloaded: number;
  /** Bytes fetched through the edge for bytesDownloaded, as they crossed the network (compressed). */
  readonly wireBytesDownloaded?: number;
  readonly completedAt?: string;
  readonly error?: string;
}

export interface ImageSummary {
  readonly size: number;
  readonly sha256: string;
  readonly format: ImageFormat;
  readonly chunks: number;
  readonly uniqueChunks: number;
  readonly zeroBytes: number;
  /** SHA-256 of the manifest file as accepted. */
  readonly manifestSha256: string;
}

export interface UploadProgress {
  readonly chunksTotal: number;
  readonly bytesTotal: number;
  readonly chunksDone: number;
  readonly bytesDone: number;
  readonly bytesCached: number;
  /** Chunks another migration was uploading at the same time: awaited instead of sent twice. */
  readonly chunksShared: number;
  /** Bytes of the packs uploaded for bytesDone, as they crossed the network (compressed). */
  readonly wireBytesDone?: number;
}

export type MigrationMode = 'migrate' | 'backup';
export type OnCongestion = 'wait' | 'suggest' | 'redirect';

export interface DecisionRecord {
  readonly congestedCacheNode: string;
  readonly congestedDataCenterId: string;
  readonly suggestedDataCenterId: string;
  readonly suggestedCacheNodeId: string;
  readonly reason: string;
  readonly since: string;
}

export interface MigrationRecord {
  readonly id: string;
  readonly status: MigrationStatus;
  readonly attempt: number;
  readonly mode: MigrationMode;
  readonly onCongestion: OnCongestion;
  readonly queueTimeoutSeconds: number;
  /** Destinations may replace files vmmig did not deliver (absent: false). */
  readonly overwrite?: boolean;
  readonly startAt?: string;
  readonly application?: string;
  readonly batchId?: string;
  readonly policyId?: string;
  readonly placement?: {
    readonly near: { readonly lat: number; readonly lon: number };
    readonly dataCenterId: string;
    readonly distanceKm: number;
  };
  readonly decision?: DecisionRecord;
  /** Task token of the waiting AwaitDecision step (never shown to clients). */
  readonly decisionToken?: string;
  /** Mode migrate: the source agent has run its --on-migrated hook. */
  readonly sourceReleased: boolean;
  readonly vmId: string;
  readonly hostId: string;
  readonly imageId: string;
  readonly sourceDataCenterId: string;
  readonly sourceCacheNodeId?: string;
  /** Destination data center ids in request order; details in `legs`. */
  readonly destinations: readonly string[];
  readonly legs: Readonly<Record<string, LegRecord>>;
  readonly image?: ImageSummary;
  readonly upload: UploadProgress;
  /**
   * Copies between cache nodes this migration made itself (over all its attempts): chunks already at the node, or
   * copied there by another migration at the same time, are not counted. Absent until the first copy.
   */
  readonly chunksCopied?: number;
  readonly bytesCopied?: number;
  /**
   * Self-healing index (DESIGN §3): chunks the index placed at a cache node that were not stored there, found in
   * this replication round and held by no other node (the source uploads them again before downloads start), and
   * how many such rounds this attempt has run. Both reset on retry.
   */
  readonly chunksLost?: number;
  readonly healRounds?: number;
  /** Index entries found wrong (object missing) and dropped, over all attempts. */
  readonly chunksHealed?: number;
  /** Cache nodes where this migration holds a transfer slot. */
  readonly reservedCacheNodes: readonly string[];
  readonly executionArn?: string;
  /** When the migration started waiting for a transfer slot, and at which cache node. */
  readonly queuedSince?: string;
  readonly queuedAt?: string;
  /** What the queued migration waits for at `queuedAt`: a transfer slot, or cache space. */
  readonly queuedFor?: 'slot' | 'space';
  /** Queued for space: the bytes it needs at `queuedAt`. */
  readonly queuedNeed?: number;
  readonly error?: { readonly code: string; readonly message: string; readonly at: string };
  readonly createdAt: string;
  readonly updatedAt: string;
}

export type { HistoryEntry, LegStatus, MigrationStatus };

export const isTerminal = (s: MigrationStatus) => TERMINAL_STATUSES.includes(s);

/** Sortable, unguessable id: time prefix (base36 ms) + 80 random bits. */
export function newMigrationId(now = Date.now()): string {
  const time = now.toString(36).padStart(9, '0');
  const rand = [...randomBytes(10)].map((b) => (b % 36).toString(36)).join('');
  return `mig-${time}${rand}${randomBytes(4).toString('hex').slice(0, 4)}`;
}

export function newLeg(dataCenterId: string, sourceDataCenterId: string, format?: ImageFormat): LegRecord {
  return {
    dataCenterId,
    local: dataCenterId === sourceDataCenterId,
    ...(format ? { format } : {}),
    status: 'PENDING',
    chunksToReplicate: 0,
    bytesToReplicate: 0,
    chunksReplicated: 0,
    bytesReplicated: 0,
    chunksDownloaded: 0,
    bytesDownloaded: 0,
  };
}

export const EMPTY_UPLOAD: UploadProgress = {
  chunksTotal: 0,
  bytesTotal: 0,
  chunksDone: 0,
  bytesDone: 0,
  bytesCached: 0,
  chunksShared: 0,
  wireBytesDone: 0,
};

/** The cache nodes a migration transfers through: its source node and every remote destination's node. */
export function cacheNodesOf(m: Pick<MigrationRecord, 'sourceCacheNodeId' | 'legs'>): string[] {
  const nodes = new Set<string>();
  if (m.sourceCacheNodeId) nodes.add(m.sourceCacheNodeId);
  for (const leg of Object.values(m.legs)) if (leg.cacheNodeId) nodes.add(leg.cacheNodeId);
  return [...nodes].sort();
}

/** Which principals may read a migration: admins, and the agents of its source and destinations. */
export function involvesDataCenter(
  m: Pick<MigrationRecord, 'sourceDataCenterId' | 'destinations'>,
  dc: string,
): boolean {
  return m.sourceDataCenterId === dc || m.destinations.includes(dc);
}
