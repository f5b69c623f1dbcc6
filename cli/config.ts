// Where the CLI finds the API and its credentials: flags, then VMMIG_ENDPOINT / VMMIG_TOKEN, then a local
// cloud running on the data directory (--data-dir, VMMIG_DATA_DIR, or ./.vmmig).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readRunningState } from '../local/state-file.ts';
import { agentToken, loadOrCreateTokens } from '../local/tokens.ts';
import { regionOfEndpoint, sigv4 } from './auth.ts';
import { ApiClient } from './client.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';

export interface ConnectionFlags {
  readonly endpoint?: string | undefined;
  readonly token?: string | undefined;
  readonly dataDir?: string | undefined;
}

/** An error the CLI explains and exits with its own code for. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
  }
}

/** A bad command line or input file (exit 2). */
export class UsageError extends CliError {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

export const defaultDataDir = (flag?: string) => resolve(flag ?? process.env['VMMIG_DATA_DIR'] ?? '.vmmig');

/** The data directory `npm start` uses by default: the project's own .vmmig. */
const PROJECT_DATA_DIR = fileURLToPath(new URL('../.vmmig', import.meta.url));

/** Where a data directory came from, for messages. */
const dataDirSource = (flag?: string) =>
  flag !== undefined
    ? '--data-dir'
    : process.env['VMMIG_DATA_DIR'] !== undefined
      ? 'VMMIG_DATA_DIR'
      : 'the default';

/** Why nothing answers and what to do: the endpoint's origin decides the advice. */
function unreachableHint(flags: ConnectionFlags, dataDir: string, pid?: number): string {
  if (flags.endpoint !== undefined || process.env['VMMIG_ENDPOINT'] !== undefined) {
    const origin = flags.endpoint !== undefined ? '--endpoint' : 'VMMIG_ENDPOINT';
    return (
      `check ${origin}; for the local cloud, start it with \`npm start\` in the project folder and leave ` +
      `${origin === '--endpoint' ? '--endpoint out' : 'VMMIG_ENDPOINT unset'}: the CLI then finds it through ` +
      `--data-dir / VMMIG_DATA_DIR (now ${dataDir})`
    );
  }
  return (
    `the local cloud on ${dataDir} (pid ${pid}) does not answer: it may still be starting, or be stuck; ` +
    `wait for its "Ctrl-C stops everything" line, or stop it and start it again with ` +
    `\`npm start -- --data-dir ${dataDir}\``
  );
}

function noApiMessage(flags: ConnectionFlags, dataDir: string): string {
  const lines = [
    `no API to talk to: no local cloud runs on ${dataDir} (${dataDirSource(flags.dataDir)}), ` +
      'and neither --endpoint nor VMMIG_ENDPOINT is set.',
  ];
  const here = resolve('.vmmig');
  // `npm start` keeps its state in the project's .vmmig: name a cloud running there (vmmig run from elsewhere).
  for (const dir of new Set([here, PROJECT_DATA_DIR])) {
    if (dir !== dataDir && readRunningState(dir))
      lines.push(`  A local cloud runs on ${dir}: pass --data-dir ${dir} or set VMMIG_DATA_DIR=${dir}.`);
  }
  const start =
    dataDir === here
      ? '`npm start` in the project folder (its state goes to ./.vmmig there)'
      : `\`npm start -- --data-dir ${dataDir}\` in the project folder`;
  lines.push(
    `  Start one: ${start};`,
    '  if one runs with another data directory, pass the same --data-dir DIR or set VMMIG_DATA_DIR=DIR;',
    '  for another API, set --endpoint URL (or VMMIG_ENDPOINT) and --token (or VMMIG_TOKEN).',
  );
  return lines.join('\n');
}

/**
 * A client for an admin (default) or for a data center's agent (`asAgentOf`: its id), which runs with that data
 * center's agent token (never the admin's: it is refused). An API Gateway endpoint
 * (`…execute-api.<region>.amazonaws.com`) without a token is called with SigV4 and the AWS credential chain
 * (`AWS_PROFILE`, Roles Anywhere's credential process, instance roles…); so is any endpoint with
 * `VMMIG_AUTH=iam`.
 */
export function connect(flags: ConnectionFlags, asAgentOf?: string): ApiClient {
  const endpoint = flags.endpoint ?? process.env['VMMIG_ENDPOINT'];
  const token = flags.token ?? process.env['VMMIG_TOKEN'];
  const dataDir = defaultDataDir(flags.dataDir);
  if (token && asAgentOf) checkAgentToken(token, asAgentOf, flags, dataDir);
  if (endpoint && token)
    return new ApiClient(endpoint, token, { unreachableHint: unreachableHint(flags, dataDir) });
  if (endpoint && (process.env['VMMIG_AUTH'] === 'iam' || regionOfEndpoint(endpoint))) {
    const region = regionOfEndpoint(endpoint) ?? process.env['AWS_REGION'];
    if (!region) throw new UsageError(`cannot tell the AWS region of ${endpoint}: set AWS_REGION`);
    return new ApiClient(endpoint, sigv4(region), { unreachableHint: unreachableHint(flags, dataDir) });
  }
  const state = readRunningState(dataDir);
  if (!endpoint && !state) throw new CliError(noApiMessage(flags, dataDir), EXIT.unavailable);
  if (!token && !existsSync(resolve(dataDir, 'tokens.json'))) {
    throw new CliError(
      `no token: pass --token or set VMMIG_TOKEN${asAgentOf ? ` (the agent token of ${asAgentOf})` : ''}; ` +
        `${dataDir} holds no local cloud tokens (--data-dir / VMMIG_DATA_DIR)`,
      EXIT.unauthenticated,
    );
  }
  const tokens = token ? undefined : loadOrCreateTokens(dataDir);
  const resolvedToken = token ?? (asAgentOf && tokens ? agentToken(tokens, asAgentOf) : tokens?.adminToken);
  return new ApiClient(endpoint ?? (state?.endpoints.api as string), resolvedToken as string, {
    unreachableHint: unreachableHint(flags, dataDir, state?.pid),
  });
}

/**
 * An agent runs with its own data center's token. A local cloud's admin token (or another data center's agent
 * token), say from a VMMIG_TOKEN exported for admin commands, would let it act on every data center: refused.
 */
function checkAgentToken(token: string, dataCenterId: string, flags: ConnectionFlags, dataDir: string): void {
  const origin = flags.token !== undefined ? '--token' : 'VMMIG_TOKEN';
  let adminToken: string | undefined;
  try {
    adminToken = existsSync(resolve(dataDir, 'tokens.json'))
      ? loadOrCreateTokens(dataDir).adminToken
      : undefined;
  } catch {
    adminToken = undefined;
  }
  if (token === adminToken || token.startsWith('vmmig-admin.')) {
    throw new UsageError(
      `${origin} is an admin token; the agent of ${dataCenterId} runs with its own agent token ` +
        `(leave ${origin} out to use the local cloud's token for ${dataCenterId}, or pass that data center's token)`,
    );
  }
  const other = /^vmmig-agent\.([^.]+)\./.exec(token)?.[1];
  if (other !== undefined && other !== dataCenterId) {
    throw new UsageError(`${origin} is the agent token of ${other}, not of --vrn ${dataCenterId}`);
  }
}
