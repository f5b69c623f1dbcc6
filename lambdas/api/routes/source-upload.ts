// How the source agent's upload is checked (DESIGN §3). A reported pack is read back from the source cache node and
// every chunk in it decoded and hashed before it is indexed, so nothing is marked present that a destination would
// refuse. Completion asks the content index (not storage) whether every planned chunk is held at the source node; a
// plan too large to look up within one request resumes where the previous call stopped.
import type { z } from '@hono/zod-openapi';
import type { PacksVerified } from '../../../protocol/api/agent.ts';
import type { Manifest } from '../../../protocol/manifest.ts';
import type { PackEntry } from '../../../protocol/pack.ts';
import { bucketRef } from '../../aws/cache-nodes.ts';
import type { Uses } from '../../aws/deps.ts';
import { mapLimit } from '../../domain/concurrency.ts';
import type { UploadPlanEntry } from '../../domain/control-keys.ts';

interface SourceNode {
  readonly id: string;
  readonly bucket: string;
  readonly region: string;
}

/** Packs read back at once: each is up to MAX_PACK_BYTES in memory while it is decoded and hashed. */
const PACK_READ_CONCURRENCY = 4;
/** The completion check looks the plan up in slices of this many chunks, watching its time budget between them. */
const CHECK_SLICE = 5000;

export type PackReport = z.infer<typeof PacksVerified> & {
  /** Bytes of the packs that added chunks to the index (what crossed the network for them). */
  readonly wireBytes: number;
};

const digestsOf = new WeakMap<Manifest, ReadonlySet<string>>();

/** The distinct chunk digests of an image (kept with its manifest, which never changes). */
export function imageDigests(manifest: Manifest): ReadonlySet<string> {
  let set = digestsOf.get(manifest);
  if (!set) {
    set = new Set(manifest.chunks.map((c) => c.sha256));
    digestsOf.set(manifest, set);
  }
  return set;
}

const first = (entries: readonly PackEntry[]) => `${entries[0]?.sha256.slice(0, 12)}…`;

/**
 * Reads each pack back at the source node and indexes its intact chunks of this image. A pack is verified when
 * every entry is such a chunk; otherwise it is rejected with the reason (its intact chunks of the image are indexed
 * all the same, and the agent uploads the rest again). A chunk already indexed at the node keeps where it is stored
 * (a destination may be planned to fetch it from there); one the collector is deleting there is not indexed, and
 * the completion check finds it missing. Idempotent: a pack reported twice finds its chunks indexed.
 */
export async function verifyPacks(
  deps: Uses<'storage' | 'contentIndex'>,
  node: SourceNode,
  packs: readonly string[],
  image: ReadonlySet<string>,
  deadline = Number.POSITIVE_INFINITY,
): Promise<PackReport> {
  const rejected: { sha256: string; reason: string }[] = [];
  let verified = 0;
  let chunks = 0;
  let wireBytes = 0;
  /** The pack read back, or why it cannot be used. */
  const readBack = async (pack: string) => {
    if (Date.now() > deadline) return 'not read back in time: report it again';
    const read = await deps.storage.readPack(bucketRef(node), pack);
    if (read.state === 'missing')
      return `not stored at cache node ${node.id}: PUT it to the URL from pack-url, then report it`;
    if (read.state === 'corrupt') return `not a valid pack: ${read.reason}`;
    return read;
  };
  await mapLimit([...new Set(packs)], PACK_READ_CONCURRENCY, async (pack) => {
    const read = await readBack(pack);
    if (typeof read === 'string') {
      rejected.push({ sha256: pack, reason: read });
      return;
    }
    const ofImage = read.intact.filter((e) => image.has(e.sha256));
    const foreign = read.intact.filter((e) => !image.has(e.sha256));
    const held = await deps.contentIndex.locate(
      node.id,
      ofImage.map((e) => e.sha256),
    );
    const fresh = ofImage.filter((e) => !held.has(e.sha256));
    const recorded =
      fresh.length > 0 ? await deps.contentIndex.record(node.id, fresh) : { addedChunks: 0, refused: [] };
    if (recorded.addedChunks > 0) wireBytes += read.size;
    const total = read.intact.length + read.corrupt.length;
    const problems: string[] = [];
    if (read.corrupt.length > 0)
      problems.push(
        `${read.corrupt.length} of its ${total} chunks do not decode to their digest (${first(read.corrupt)})`,
      );
    if (foreign.length > 0)
      problems.push(
        `${foreign.length} of its ${total} chunks are not chunks of this image (${first(foreign)})`,
      );
    if (problems.length > 0) {
      rejected.push({ sha256: pack, reason: `${problems.join('; ')}: upload those chunks again` });
      return;
    }
    verified++;
    chunks += ofImage.length - recorded.refused.length;
  });
  return { verified, chunks, rejected, wireBytes };
}

interface UploadCheck {
  readonly planChunks: number;
  /** Plan positions [0, through) were all held at the source node. */
  readonly through: number;
}

/**
 * The planned chunks not held at the source node, as far as the check got by `deadline` (`unchecked`: how many it
 * did not look up). A plan of more than one slice keeps its progress under `checkpointKey`, so calls that each run
 * out of time still get through it.
 */
export async function missingAtSource(
  deps: Uses<'storage' | 'contentIndex' | 'control'>,
  node: SourceNode,
  plan: readonly UploadPlanEntry[],
  checkpointKey: string,
  deadline = Number.POSITIVE_INFINITY,
): Promise<{ missing: UploadPlanEntry[]; unchecked: number }> {
  const large = plan.length > CHECK_SLICE;
  const saved = large ? await deps.storage.getJson<UploadCheck>(deps.control, checkpointKey) : undefined;
  const from = saved?.planChunks === plan.length ? Math.min(saved.through, plan.length) : 0;
  const missing: UploadPlanEntry[] = [];
  let at = from;
  let through = from;
  // At least one slice per call, so a call that starts late still makes progress.
  while (at < plan.length && (at === from || Date.now() < deadline)) {
    const slice = plan.slice(at, at + CHECK_SLICE);
    const held = await deps.contentIndex.holders(
      slice.map((e) => e.sha256),
      [node.id],
    );
    for (const e of slice) {
      if (!held.has(e.sha256)) missing.push(e);
      else if (missing.length === 0) through++;
    }
    at += slice.length;
  }
  if (large && through > from && through < plan.length) {
    await deps.storage.putJson(deps.control, checkpointKey, {
      planChunks: plan.length,
      through,
    } satisfies UploadCheck);
  }
  return { missing, unchecked: plan.length - at };
}
