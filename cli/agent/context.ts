// What every agent job shares: the API client, its data center, directories, limits and logging.
import { join } from 'node:path';
import type { ApiClient } from '../client.ts';
import type { RateLimiter } from './rate-limit.ts';

export interface AgentOptions {
  readonly client: ApiClient;
  readonly dataCenterId: string;
  /** The data center's directory: images in `images/`, agent state in `.vmmig/`. */
  readonly dir: string;
  /** Parallel chunk transfers per job. */
  readonly concurrency: number;
  readonly pollIntervalMs: number;
  /** Shell command run when an image has arrived ("VM created at the destination"). */
  readonly onReady?: string | undefined;
  /** Shell command run at the source once every destination has the VM (mode migrate). */
  readonly onMigrated?: string | undefined;
  /** Transfer rate caps in bytes per second, per direction. */
  readonly limits?: {
    readonly upload?: RateLimiter | undefined;
    readonly download?: RateLimiter | undefined;
  };
  readonly log: (line: string) => void;
}

export const paths = (dir: string) => ({
  images: join(dir, 'images'),
  image: (imageId: string) => join(dir, 'images', imageId),
  state: join(dir, '.vmmig'),
  manifest: (migrationId: string) => join(dir, '.vmmig', 'manifests', `${migrationId}.json`),
  journal: (migrationId: string, kind: 'upload' | 'download') =>
    join(dir, '.vmmig', 'journal', `${migrationId}.${kind}`),
  incoming: (migrationId: string) => join(dir, '.vmmig', 'incoming', `${migrationId}.part`),
  delivered: (migrationId: string) => join(dir, '.vmmig', 'delivered', `${migrationId}.json`),
  /** What this agent put where (placement.ts): only such files are replaced without overwrite. */
  deliveries: join(dir, '.vmmig', 'deliveries'),
  /** Images delivered here whose chunks a later download may take instead of fetching (see local-index.ts). */
  localIndex: join(dir, '.vmmig', 'index'),
  localIndexEntry: (imageId: string) => join(dir, '.vmmig', 'index', `${imageId}.json`),
});

/** Thrown inside a job to report the failure to the API as its cause (not retried by the agent). */
export class JobFailure extends Error {
  override readonly name = 'JobFailure';
}

/** Thrown when the migration ended elsewhere (cancelled, failed): stop quietly. */
export class JobCancelled extends Error {
  override readonly name = 'JobCancelled';
}
