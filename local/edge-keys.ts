// The local edge's signing key pair (CloudFront's trusted key group stand-in), made at first start and kept.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateEdgeKeyPair, generateKeyPairId } from './edge/keys.ts';

export interface EdgeKeys {
  readonly keyPairId: string;
  readonly publicKeyPem: string;
  readonly privateKeyPem: string;
}

export function loadOrCreateEdgeKeys(dataDir: string): EdgeKeys {
  const file = join(dataDir, 'edge-keys.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as EdgeKeys;
  const keys: EdgeKeys = { keyPairId: generateKeyPairId(), ...generateEdgeKeyPair() };
  writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600, flag: 'wx' });
  return keys;
}
