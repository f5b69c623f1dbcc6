// Jobs that move nothing over the network. Handover: a local migration (source and destination in one data
// center, draft §3.1 step 2) verifies the image in place, converts it if asked, and runs the VM-ready hook.
// Release: after every destination has the VM (mode migrate), the source runs its --on-migrated hook.
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  completeDestination,
  failDestination,
  releaseSource,
  type WorkItem,
} from '../../protocol/api/agent.ts';
import {
  dependsOnParent,
  detectImageFormat,
  type ImageFormat,
  readImageSignature,
} from '../../protocol/image-format.ts';
import { type AgentOptions, JobFailure, paths } from './context.ts';
import { convertedPath, convertImage } from './convert.ts';
import { hookEnv, sha256OfFile } from './destination.ts';
import { runHook } from './hooks.ts';
import { allocatedBytes, checkPlace, permanentFsFailure, recordDelivery } from './placement.ts';
import { ProgressReporter } from './progress.ts';

/** The image's format from its bytes, refusing images that need a parent image to be of use. */
export async function inspectImage(path: string, imageId: string): Promise<ImageFormat> {
  const sig = await readImageSignature(path);
  const format = detectImageFormat(sig.head, sig.tail);
  if (dependsOnParent(format, sig.head, sig.tail)) {
    throw new JobFailure(
      `image ${imageId} is a ${format} overlay on a backing image: flatten it first (qemu-img convert -O ${format} …)`,
    );
  }
  return format;
}

interface HandedOver {
  readonly sha256: string;
  readonly path: string;
  readonly format: ImageFormat;
  readonly hookDone: boolean;
  /** A converted image replaced a file that was at `path`. */
  readonly replaced?: boolean;
}

export async function handover(opts: AgentOptions, work: WorkItem, abort: AbortController): Promise<void> {
  const p = paths(opts.dir);
  const params = { migrationId: work.migrationId, dataCenterId: opts.dataCenterId };
  const marker = p.delivered(work.migrationId);
  const progress = new ProgressReporter(
    opts.client,
    work.migrationId,
    { role: 'destination', dataCenterId: opts.dataCenterId },
    'verifying',
    abort,
  );
  try {
    let state = await readFile(marker, 'utf8').then(
      (t) => JSON.parse(t) as HandedOver,
      () => undefined,
    );
    if (!state || !(await stat(state.path).catch(() => undefined))) {
      const image = p.image(work.imageId);
      if (!(await stat(image).catch(() => undefined))?.isFile())
        throw new JobFailure(`image ${work.imageId} is not in ${p.images}`);
      const format = await inspectImage(image, work.imageId);
      const sha256 = await sha256OfFile(image, abort.signal);
      state = { sha256, path: image, format, hookDone: false };
      if (work.format && work.format !== format) {
        // The converted image goes next to the source's, which is left as it is; a file already at that place is
        // replaced only as a delivery would replace it.
        progress.phase = 'converting';
        const target = convertedPath(image, work.format);
        const place = { overwrite: work.overwrite === true, migrationId: work.migrationId };
        await checkPlace(p.images, p.deliveries, target, place);
        const aside = `${p.incoming(work.migrationId)}.${work.format}`;
        await mkdir(dirname(aside), { recursive: true });
        await convertImage(image, format, work.format, aside);
        const { replaces } = await checkPlace(p.images, p.deliveries, target, place);
        await recordDelivery(p.deliveries, target, work.migrationId, aside);
        await rename(aside, target);
        state = {
          sha256,
          path: target,
          format: work.format,
          hookDone: false,
          ...(replaces ? { replaced: true } : {}),
        };
      }
      await mkdir(dirname(marker), { recursive: true });
      await writeFile(marker, JSON.stringify(state));
    }
    if (!state.hookDone && opts.onReady) {
      await runHook('on-ready', opts.onReady, hookEnv(opts, work, state.path, state.format));
      state = { ...state, hookDone: true };
      await writeFile(marker, JSON.stringify(state));
    }
    const allocated = await allocatedBytes(state.path);
    await opts.client.call(completeDestination, {
      params,
      json: {
        sha256: state.sha256,
        path: state.path,
        format: state.format,
        ...(allocated !== undefined ? { allocatedBytes: allocated } : {}),
        ...(state.replaced ? { replaced: true } : {}),
      },
    });
    opts.log(`${work.migrationId}: ${work.imageId} handed over locally at ${state.path} (${state.format})`);
  } catch (err) {
    const failure =
      permanentFsFailure(err) ??
      (err instanceof JobFailure || (err instanceof Error && /hook/.test(err.message)) ? err : undefined);
    if (failure) {
      await opts.client.call(failDestination, { params, json: { reason: failure.message } });
      opts.log(`${work.migrationId}: handover failed: ${failure.message}`);
      return;
    }
    throw err;
  } finally {
    progress.stop();
  }
}

export async function release(opts: AgentOptions, work: WorkItem): Promise<void> {
  const p = paths(opts.dir);
  const image = p.image(work.imageId);
  // Handed over in place (this data center is also a destination, the image kept its path): the source's copy IS
  // the delivered image, and a hook that removes the source's old copy would remove it.
  const handedOver = await readFile(p.delivered(work.migrationId), 'utf8').then(
    (t) => (JSON.parse(t) as HandedOver).path,
    () => undefined,
  );
  if (opts.onMigrated && handedOver !== undefined && resolve(handedOver) === resolve(image)) {
    await opts.client.call(releaseSource, {
      params: { migrationId: work.migrationId },
      json: { hook: 'skipped' },
    });
    opts.log(
      `${work.migrationId}: source released; on-migrated hook not run: ${image} was handed over in place and is the delivered image`,
    );
    return;
  }
  if (opts.onMigrated) {
    const format = await detectImageFormatOf(image);
    try {
      await runHook('on-migrated', opts.onMigrated, hookEnv(opts, work, image, format));
    } catch (err) {
      throw new JobFailure((err as Error).message);
    }
  }
  await opts.client.call(releaseSource, {
    params: { migrationId: work.migrationId },
    json: { hook: opts.onMigrated ? 'ran' : 'none' },
  });
  opts.log(`${work.migrationId}: source released${opts.onMigrated ? ' (on-migrated hook ran)' : ''}`);
}

async function detectImageFormatOf(path: string): Promise<string> {
  try {
    const sig = await readImageSignature(path);
    return detectImageFormat(sig.head, sig.tail);
  } catch {
    return 'unknown';
  }
}
