// Cache space commands: pinned images (kept at named cache nodes whatever the space) and the cache collector's
// settings (grace period, retention, water marks).
import {
  type CacheSettings,
  deletePin,
  getCacheSettings,
  listPins,
  type Pin,
  patchCacheSettings,
  putPin,
} from '../../protocol/api/cache.ts';
import type { ApiClient } from '../client.ts';
import { UsageError } from '../config.ts';
import { EXIT } from '../exit-codes.ts';

const useJson = (json?: boolean) => json === true || !process.stdout.isTTY;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `90s`, `10m`, `1h`, `2d`, or seconds as a number. */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} ${text}: expected a duration such as 90s, 10m, 1h or 2d`);
  return Number(m[1]) * UNIT_SECONDS[(m[2] || 's') as keyof typeof UNIT_SECONDS];
}

/** `30d` or `30` (days), or `none` for no retention period. */
export function parseRetention(text: string): number | null {
  if (text.trim() === 'none') return null;
  const m = /^(\d+)\s*d?$/.exec(text.trim());
  if (!m) throw new UsageError(`--retention ${text}: expected whole days such as 30d, or none`);
  return Number(m[1]);
}

/** `0.9` or `90%`. */
export function parseFraction(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(%?)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag} ${text}: expected a fraction of the budget such as 0.9 or 90%`);
  return Number(m[1]) / (m[2] ? 100 : 1);
}

/** The largest whole unit: 3600 → 1h, 90 → 90s. */
export function formatDuration(seconds: number): string {
  for (const unit of ['d', 'h', 'm'] as const) {
    const n = UNIT_SECONDS[unit];
    if (seconds >= n && seconds % n === 0) return `${seconds / n}${unit}`;
  }
  return `${seconds}s`;
}

const percent = (f: number) => `${Math.round(f * 1000) / 10}%`;

export async function cacheSettingsCmd(
  client: ApiClient,
  opts: { grace?: string; retention?: string; highWater?: string; lowWater?: string; json?: boolean },
): Promise<number> {
  const patch = {
    ...(opts.grace !== undefined ? { graceSeconds: parseDuration('--grace', opts.grace) } : {}),
    ...(opts.retention !== undefined ? { retentionDays: parseRetention(opts.retention) } : {}),
    ...(opts.highWater !== undefined ? { highWater: parseFraction('--high-water', opts.highWater) } : {}),
    ...(opts.lowWater !== undefined ? { lowWater: parseFraction('--low-water', opts.lowWater) } : {}),
  };
  const { body } =
    Object.keys(patch).length === 0
      ? await client.call<CacheSettings>(getCacheSettings)
      : await client.call<CacheSettings>(patchCacheSettings, { json: patch });
  if (useJson(opts.json)) {
    process.stdout.write(`${JSON.stringify(body)}\n`);
    return EXIT.ok;
  }
  process.stdout.write(
    `grace       ${formatDuration(body.graceSeconds)}: a chunk marked for eviction is deleted this long after, unless used meanwhile\n` +
      `retention   ${body.retentionDays === undefined ? 'none: only space pressure evicts' : `${body.retentionDays}d: chunks nothing keeps go once unused this long`}\n` +
      `high water  ${percent(body.highWater)} of a cache node's budget: above it the least recently used chunks go\n` +
      `low water   ${percent(body.lowWater)}: until the node is down to this\n`,
  );
  return EXIT.ok;
}

export async function pinCmd(
  client: ApiClient,
  imageId: string,
  opts: { at: string; migration?: string; json?: boolean },
): Promise<number> {
  const cacheNodeIds = opts.at
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (cacheNodeIds.length === 0) throw new UsageError('--at: name the cache nodes, e.g. --at hkg,sin');
  const { body, status } = await client.call<Pin>(putPin, {
    params: { imageId },
    json: { cacheNodeIds, ...(opts.migration ? { migrationId: opts.migration } : {}) },
  });
  process.stdout.write(
    useJson(opts.json)
      ? `${JSON.stringify(body)}\n`
      : `${status === 201 ? 'pinned' : 're-pinned'} ${body.imageId} (the version of ${body.migrationId}) at ${body.cacheNodeIds.join(', ')}\n`,
  );
  return EXIT.ok;
}

export async function unpinCmd(client: ApiClient, imageId: string): Promise<number> {
  await client.call(deletePin, { params: { imageId } });
  process.stdout.write(`unpinned ${imageId}: its chunks may be evicted again\n`);
  return EXIT.ok;
}

export async function listPinsCmd(client: ApiClient, opts: { json?: boolean }): Promise<number> {
  const pins: Pin[] = [];
  let cursor: string | undefined;
  do {
    const { body } = await client.call<{ items: Pin[]; nextCursor?: string }>(listPins, {
      query: { limit: 1000, cursor },
    });
    pins.push(...body.items);
    cursor = body.nextCursor;
  } while (cursor);
  if (!useJson(opts.json) && pins.length === 0) process.stdout.write('no pinned images\n');
  for (const p of pins) {
    process.stdout.write(
      useJson(opts.json)
        ? `${JSON.stringify(p)}\n`
        : `${p.imageId.padEnd(20)} ${p.migrationId}  at ${p.cacheNodeIds.join(',')}  since ${p.pinnedAt}\n`,
    );
  }
  return EXIT.ok;
}
