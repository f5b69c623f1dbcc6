// `vmmig local` (npm start): run the local cloud in the foreground until Ctrl-C.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_RATE_LIMIT } from '../../local/api-rate-limit.ts';
import { DEFAULT_PORT_BASE, portsFrom, startLocalCloud } from '../../local/cloud.ts';
import { LOCAL_NAMES } from '../../local/deployment.ts';
import { loadTopology } from '../../protocol/topology.ts';
import { defaultDataDir } from '../config.ts';

const CDK_JSON = fileURLToPath(new URL('../../cdk.json', import.meta.url));

export interface LocalFlags {
  readonly dataDir?: string;
  readonly portBase?: number;
  readonly agents?: boolean;
  readonly onReady?: string;
  readonly onMigrated?: string;
  readonly topology?: string;
  readonly quiet?: boolean;
  /** Requests per second per principal on the API (bursts of twice that); 0: no limit. */
  readonly rateLimit?: number;
}

const COLORS = [36, 33, 35, 32, 34, 31];

export async function runLocal(flags: LocalFlags): Promise<number> {
  const dataDir = defaultDataDir(flags.dataDir);
  const topology = loadTopology(flags.topology ?? CDK_JSON);
  const tty = process.stdout.isTTY;
  const colorOf = new Map<string, number>();
  const log = (component: string, line: string) => {
    if (flags.quiet && !component.startsWith('agent')) return;
    let color = colorOf.get(component);
    if (color === undefined) {
      color = COLORS[colorOf.size % COLORS.length] as number;
      colorOf.set(component, color);
    }
    const tag = component.padEnd(12);
    process.stdout.write(`${tty ? `\x1b[${color}m${tag}\x1b[0m` : tag} ${line}\n`);
  };
  // --rate-limit N: N requests/s per principal, bursts of 2N; 0 turns the limit off.
  const rateLimit =
    flags.rateLimit === undefined
      ? DEFAULT_RATE_LIMIT
      : flags.rateLimit === 0
        ? (false as const)
        : { requestsPerSecond: flags.rateLimit, burst: 2 * flags.rateLimit };
  const cloud = await startLocalCloud({
    dataDir,
    topology,
    ports: portsFrom(flags.portBase ?? DEFAULT_PORT_BASE),
    agents:
      flags.agents === false
        ? false
        : {
            ...(flags.onReady ? { onReady: flags.onReady } : {}),
            ...(flags.onMigrated ? { onMigrated: flags.onMigrated } : {}),
          },
    rateLimit,
    log,
  });
  const e = cloud.endpoints;
  // The CLI looks in ./.vmmig unless told otherwise: a cloud elsewhere must be named.
  const cliPrefix = dataDir === resolve('.vmmig') ? '' : `VMMIG_DATA_DIR=${dataDir} `;
  const out = [
    '',
    `cdn-vm-migration local cloud — state in ${dataDir}`,
    '',
    `  API (CVMM)       ${e.api}        OpenAPI: ${e.api}/openapi.json`,
    `  Edge (CDN)       ${e.edge}        signed URLs only`,
    `  Step Functions   ${e.stepFunctions}        state machine ${cloud.stateMachineArn}`,
    `  S3 (cache nodes) ${e.s3}        buckets ${LOCAL_NAMES.controlBucket}, ${topology.cacheNodes.map((n) => LOCAL_NAMES.cacheBucket(n.id)).join(', ')}`,
    `  DynamoDB         ${e.dynamodb}        tables Registry, ContentMap, LocationMap, Migrations, ContentIndex`,
    rateLimit
      ? `  API rate limit   ${rateLimit.requestsPerSecond} requests/s per principal, bursts of ${rateLimit.burst} (--rate-limit)`
      : '  API rate limit   none (--rate-limit 0)',
    '',
    'Tokens (Authorization: Bearer <token>)',
    `  admin            ${cloud.tokens.adminToken}`,
    ...topology.dataCenters.map((dc) => `  agent ${dc.id.padEnd(10)} ${cloud.agentToken(dc.id)}`),
    '',
    flags.agents === false
      ? 'Agents: not started (--no-agents)'
      : `Agents: one per data center; images in ${dataDir}/dc/<data center>/images/`,
    ...cloud.warnings.map((w) => `WARNING: ${w}`),
    '',
    `Try:  curl -H "Authorization: Bearer ${cloud.tokens.adminToken}" ${e.api}/v1/data-centers`,
    `      ${cliPrefix}npx vmmig migrate --vm vm-1 --image-id disk.qcow2 --from dc-gz --to dc-osa --wait`,
    `      (vmmig finds this cloud through its data directory: --data-dir ${dataDir} or VMMIG_DATA_DIR=${dataDir}` +
      `${cliPrefix ? '' : '; ./.vmmig from this folder'})`,
    'Ctrl-C stops everything; state stays for the next start.',
    '',
  ];
  process.stdout.write(`${out.join('\n')}\n`);

  await new Promise<void>((resolve) => {
    let stoppingSince = 0;
    const stop = (signal: string) => {
      // A terminal's Ctrl-C reaches npm and this process both: ignore the echo, answer a real second press.
      if (stoppingSince > 0) {
        if (Date.now() - stoppingSince > 1000)
          process.stdout.write('still stopping; waiting for the servers to exit\n');
        return;
      }
      stoppingSince = Date.now();
      process.stdout.write(`\n${signal}: stopping the local cloud…\n`);
      void cloud.stop().then(resolve);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  process.stdout.write(`stopped; state kept in ${dataDir}\n`);
  return 0;
}
