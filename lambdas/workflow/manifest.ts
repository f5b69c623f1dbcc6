// Reading the accepted manifest of a migration from the control bucket.

import type { Manifest } from '../../protocol/manifest.ts';
import type { Uses } from '../aws/deps.ts';
import { manifestKey } from '../domain/control-keys.ts';
import { TaskFailure } from './task.ts';

export async function loadManifest(
  deps: Uses<'storage' | 'control'>,
  migrationId: string,
): Promise<Manifest> {
  const manifest = await deps.storage.getJson<Manifest>(deps.control, manifestKey(migrationId));
  if (!manifest)
    throw new TaskFailure('ManifestMissing', `the manifest of ${migrationId} is not in the control bucket`);
  return manifest;
}
