// Object keys in the control bucket: manifests and the plans that state machine payloads refer to by key.
import { createHash } from 'node:crypto';

export const manifestKey = (migrationId: string) => `migrations/${migrationId}/manifest.json`;
export const uploadPlanKey = (migrationId: string, attempt: number) =>
  `migrations/${migrationId}/a${attempt}/upload-plan.json`;
/**
 * The checkpoint of a completion check: how far into the plan every chunk was found held. One per wait for the
 * upload (its task token): a new wait comes with a new plan.
 */
export const uploadCheckKey = (migrationId: string, attempt: number, taskToken: string) =>
  `migrations/${migrationId}/a${attempt}/upload-check-${createHash('sha256').update(taskToken).digest('hex').slice(0, 16)}.json`;
export const replicationPrefix = (migrationId: string, attempt: number) =>
  `migrations/${migrationId}/a${attempt}/replication`;
export const replicationBatchKey = (prefix: string, batch: number) => `${prefix}/${batch}.json`;
/** The Distributed Map's items: one `{migrationId, prefix, batch}` per batch. */
export const replicationItemsKey = (prefix: string) => `${prefix}/items.json`;

/** One chunk the source must upload (first occurrence in the image). */
export interface UploadPlanEntry {
  readonly sha256: string;
  readonly offset: number;
  readonly length: number;
}

/**
 * One server-side copy between cache nodes, or (`verify`, from = to) a check that a chunk the index places at its
 * node is stored there, copied from another holder if it is not. Where the chunk is stored at `from` (its pack, or
 * its own object) is looked up in the content index when it is copied: a copy brings the object whole.
 */
export interface CopyItem {
  readonly sha256: string;
  readonly length: number;
  readonly from: string;
  readonly to: string;
  readonly verify?: true;
}

/** Chunks another migration is uploading: this one waits for them (CheckShared). */
export const awaitedKey = (migrationId: string, attempt: number) =>
  `migrations/${migrationId}/a${attempt}/awaited.json`;
