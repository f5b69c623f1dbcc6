// The `vmmig` command: the local cloud, the data center agent, and the operator commands.
import { createRequire } from 'node:module';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MAX_VERIFY_LIMIT } from '../protocol/api/cache-verify.ts';
import {
  MAX_QUEUE_TIMEOUT_SECONDS,
  MIGRATION_STATUSES,
  MigrationMode,
  OnCongestion,
} from '../protocol/api/migrations.ts';
import { MAX_KEPT_RUNS } from '../protocol/api/policies.ts';
import { CacheNodeStatus } from '../protocol/api/registry.ts';
import { parseRate } from './agent/rate-limit.ts';
import { ApiError, ApiUnreachableError } from './client.ts';
import { runAgent } from './commands/agent.ts';
import { cacheSettingsCmd, listPinsCmd, pinCmd, unpinCmd } from './commands/cache.ts';
import { cacheGcCmd } from './commands/cache-gc.ts';
import { type VerifyFlags, verifyCacheCmd } from './commands/cache-verify.ts';
import { estimate } from './commands/estimate.ts';
import type { runLocal } from './commands/local.ts';
import { cancel, decide, list, type MigrateFlags, migrate, retry, status } from './commands/migrations.ts';
import { listPoliciesCmd, putPolicyCmd, removePolicy } from './commands/policies.ts';
import { addDc, listDcs, listNodes, removeDc, setNode } from './commands/registry.ts';
import { CliError, type ConnectionFlags, connect } from './config.ts';
import { EXIT, exitCodeTable, exitForHttpStatus } from './exit-codes.ts';
import { parseBudget } from './size.ts';

const int = (name: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
  return n;
};
/** The values the API takes (protocol/api/migrations.ts), for `migrate` and `policy put`. */
const onCongestionOption = () =>
  new Option('--on-congestion <what>', 'when a destination cache node is full').choices(OnCongestion.options);
const queueTimeoutOption = (description: string) =>
  new Option('--queue-timeout <seconds>', description).argParser(
    int('queue-timeout', 0, MAX_QUEUE_TIMEOUT_SECONDS),
  );
const rate = (value: string) => {
  try {
    return parseRate(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const budget = (value: string) => {
  try {
    return parseBudget(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};
const collect = (value: string, previous: string[] = []) => [...previous, value];

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };
const program = new Command('vmmig')
  .version(version)
  .description('Move VM disk images between data centers through a CDN (draft-ou-cdn-vm-migration-scheme-00)')
  .showHelpAfterError()
  .exitOverride()
  .addHelpText(
    'after',
    `\nExit codes:\n${exitCodeTable()
      .map((e) => `  ${String(e.code).padStart(3)}  ${e.meaning}`)
      .join('\n')}`,
  );

/** The connection options; an agent's token is its data center's, never the admin's. */
const connection = (cmd: Command, who: 'admin' | 'agent' = 'admin') =>
  cmd
    .option('--endpoint <url>', 'API endpoint (default: VMMIG_ENDPOINT, or the local cloud)')
    .option(
      '--token <token>',
      who === 'agent'
        ? "this data center's agent token (default: VMMIG_TOKEN, or the local cloud's agent token for --vrn; an admin token is refused)"
        : 'bearer token (default: VMMIG_TOKEN, or the local cloud admin token)',
    )
    .option('--data-dir <dir>', 'local cloud data directory (default: VMMIG_DATA_DIR or ./.vmmig)');

let exitCode: number = EXIT.ok;
const run =
  <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
  async (...args: A) => {
    exitCode = await fn(...args);
  };
type Json = { json?: boolean } & ConnectionFlags;

program
  .command('local')
  .description('run the whole system on this machine (the local cloud) until Ctrl-C')
  .option('--data-dir <dir>', 'state directory (default: VMMIG_DATA_DIR or ./.vmmig)')
  .option(
    '--port-base <port>',
    'first of five consecutive ports: API, edge, Step Functions, S3, DynamoDB',
    int('port', 1024, 65530),
    7700,
  )
  .option('--no-agents', 'do not start an agent per data center')
  .option('--on-ready <command>', 'hook the agents run when an image has arrived')
  .option('--on-migrated <command>', 'hook the agents run at the source once every destination has the VM')
  .option('--topology <cdk.json>', 'read the topology from another cdk.json')
  .option('--quiet', 'log only what agents say')
  .option(
    '--rate-limit <n>',
    'API requests per second each principal may send, bursts of twice that; over it: 429 (default 500; 0: no limit)',
    int('rate-limit', 0, 1_000_000),
  )
  // Loaded on demand: the whole local cloud would otherwise sit in every agent's heap (more GC while it downloads).
  .action(
    run(async (o: Parameters<typeof runLocal>[0]) => (await import('./commands/local.ts')).runLocal(o)),
  );

connection(
  program
    .command('agent')
    .description("run a data center's agent (VRN): uploads and downloads images as the API asks")
    .requiredOption('--vrn <id>', 'data center id')
    .requiredOption('--dir <dir>', 'data center directory; images live in <dir>/images')
    .option('--concurrency <n>', 'parallel chunk transfers per job', int('concurrency', 1, 64), 8)
    .option(
      '--poll-interval <ms>',
      'how often to ask for work while busy',
      int('poll-interval', 100, 60_000),
      1000,
    )
    .option(
      '--limit-rate <rate>',
      'cap each direction (upload, download) at this many bytes/s, e.g. 50M',
      rate,
    )
    .option('--limit-upload <rate>', 'cap uploads only', rate)
    .option('--limit-download <rate>', 'cap downloads only', rate)
    .option(
      '--on-ready <command>',
      'shell command run when an image arrives (VMMIG_IMAGE_PATH, VMMIG_VM_ID, VMMIG_IMAGE_FORMAT… in its environment)',
    )
    .option(
      '--on-migrated <command>',
      'shell command run at the source once every destination has the VM (mode migrate)',
    ),
  'agent',
).action(run((o: Parameters<typeof runAgent>[0]) => runAgent(o)));

connection(
  program
    .command('migrate')
    .description(
      'migrate (or back up) VM images: one VM, several (--vm ID=IMAGE, repeated), or a --batch file',
    )
    .option('--vm <id>', 'VM id; ID=IMAGE to name several VMs with their images (repeatable)', collect)
    .option('--image-id <file>', "image file name in the source data center's image store (one VM)")
    .option(
      '--batch <file>',
      'VMs from a file: JSON {"vms":[{"vmId","imageId","hostId"?}]} or lines "vmId imageId [hostId]"',
    )
    .requiredOption('--from <dc>', 'source data center')
    .option(
      '--to <dc[:format]>',
      'destination, optionally converting the image format there (repeat for several)',
      collect,
    )
    .option(
      '--near <lat,lon[:format]>',
      'deliver to the data center nearest to this location (a desktop near its user)',
    )
    .option('--host <id>', 'host id of the VM at the source (draft Table 1)', 'default')
    .addOption(
      new Option(
        '--mode <mode>',
        'migrate: the source runs --on-migrated when done; backup: the source is left alone',
      ).choices(MigrationMode.options),
    )
    .addOption(onCongestionOption())
    .addOption(queueTimeoutOption('how long to wait for a free slot'))
    .option('--start-at <time>', 'start at this time (ISO 8601)')
    .option('--application <name>', 'record the application that triggered the migration')
    .option(
      '--overwrite',
      'replace a file at a destination that vmmig did not deliver (or that changed since); without it that destination fails',
    )
    .option('--wait', 'follow until it ends')
    .option('--json', 'JSON lines instead of progress bars')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(run((o: MigrateFlags & ConnectionFlags) => migrate(() => connect(o), o)));

connection(
  program
    .command('status <id>')
    .description('status, legs, progress and history of a migration (or the roll-up of a batch-… id)')
    .option('--watch', 'follow until it ends')
    .option('--json', 'JSON output')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(run((id: string, o: { watch?: boolean } & Json) => status(connect(o), id, o)));

connection(
  program
    .command('ls')
    .description('list migrations, newest first')
    .addOption(new Option('--status <status>', 'only this status').choices([...MIGRATION_STATUSES]))
    .option('--limit <n>', 'how many', int('limit', 1, 1000), 50)
    .option('--json', 'JSON lines'),
).action(run((o: { status?: string; limit: number } & Json) => list(connect(o), o)));

connection(
  program.command('cancel <id>').description('cancel a migration').option('--json', 'JSON output'),
).action(run((id: string, o: Json) => cancel(connect(o), id, o)));

connection(
  program
    .command('retry <id>')
    .description('run a failed or cancelled migration again; what is done is skipped')
    .option('--destination <dc>', 'retry only this destination (repeatable)', collect)
    .option('--wait', 'follow it until it ends')
    .option('--json', 'JSON output')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(run((id: string, o: { wait?: boolean; destination?: string[] } & Json) => retry(connect(o), id, o)));

connection(
  program
    .command('decide <id>')
    .description('answer a suggested destination (status AWAITING_DECISION)')
    .option('--accept', 'go to the suggested data center instead')
    .option('--reject', 'keep the destination and wait for a free slot')
    .option('--json', 'JSON output'),
).action(run((id: string, o: { accept?: boolean; reject?: boolean } & Json) => decide(connect(o), id, o)));

connection(
  program
    .command('estimate')
    .description('before any upload: how much of an image the cache nodes already hold')
    .requiredOption('--image <file>', 'the image file')
    .requiredOption('--to <dc>', 'destination data center')
    .option('--from <dc>', 'source data center')
    .option('--json', 'JSON output'),
).action(run((o: { image: string; to: string; from?: string } & Json) => estimate(connect(o), o)));

const policy = program
  .command('policy')
  .description('backup policies: a VM backed up every interval, on its own');
connection(
  policy
    .command('put <id>')
    .description('create or replace a backup policy')
    .requiredOption('--vm <id>', 'VM id')
    .requiredOption('--image-id <file>', 'image file name at the source')
    .requiredOption('--from <dc>', 'source data center')
    .requiredOption('--to <dc[:format]>', 'destination (repeatable)', collect)
    .requiredOption('--every <interval>', 'e.g. 30m, 6h, 1d')
    .option(
      '--first-at <time>',
      'first run at this time (ISO 8601, e.g. 2026-05-01T02:00:00Z); without it a new policy runs at once',
    )
    .addOption(new Option('--first-run <time>', 'the former name of --first-at').hideHelp())
    .option('--host <id>', 'host id', 'default')
    .addOption(onCongestionOption())
    .addOption(queueTimeoutOption('how long a run waits for a free slot'))
    .option(
      '--keep-runs <n>',
      "the latest completed runs whose chunks stay at the destinations' cache nodes (default 1; 0: none)",
      int('keep-runs', 0, MAX_KEPT_RUNS),
    )
    .option('--disabled', 'create it disabled')
    .option('--json', 'JSON output'),
).action(
  run((id: string, o: Parameters<typeof putPolicyCmd>[2] & ConnectionFlags) =>
    putPolicyCmd(() => connect(o), id, o),
  ),
);
connection(policy.command('ls').description('list backup policies').option('--json', 'JSON lines')).action(
  run((o: Json) => listPoliciesCmd(connect(o), o)),
);
connection(policy.command('rm <id>').description('remove a backup policy')).action(
  run((id: string, o: ConnectionFlags) => removePolicy(connect(o), id)),
);

const image = program.command('image').description('images pinned in the cache');
connection(
  image
    .command('pin <imageId>')
    .description("keep a version of an image at some cache nodes, whatever the space and the image's age")
    .requiredOption('--at <nodes>', 'the cache nodes, comma-separated (e.g. hkg,sin)')
    .option('--migration <id>', 'the migration whose version to keep (default: the latest completed one)')
    .option('--json', 'JSON output'),
).action(
  run((imageId: string, o: { at: string; migration?: string } & Json) => pinCmd(connect(o), imageId, o)),
);
connection(
  image.command('unpin <imageId>').description('unpin an image: its chunks may be evicted again'),
).action(run((imageId: string, o: ConnectionFlags) => unpinCmd(connect(o), imageId)));
connection(image.command('pins').description('list pinned images').option('--json', 'JSON lines')).action(
  run((o: Json) => listPinsCmd(connect(o), o)),
);

const cache = program.command('cache').description('cache space: what the cache collector keeps and evicts');
connection(
  cache
    .command('settings')
    .description("show the cache collector's settings, or change those given")
    .option(
      '--grace <duration>',
      'between marking a chunk and deleting it, e.g. 10m, 1h (a use meanwhile saves it)',
    )
    .option(
      '--retention <days>',
      'evict chunks nothing keeps once unused this long, e.g. 30d; none: only for space',
    )
    .option(
      '--high-water <fraction>',
      "of a cache node's budget above which eviction starts, e.g. 0.9 or 90%",
    )
    .option('--low-water <fraction>', 'of the budget eviction goes down to, e.g. 0.75')
    .option('--json', 'JSON output'),
).action(
  run((o: Parameters<typeof cacheSettingsCmd>[1] & ConnectionFlags) => cacheSettingsCmd(connect(o), o)),
);
connection(
  cache
    .command('verify <node>')
    .description(
      "check a cache node's content index against its bucket, both ways; exit 1 when something disagrees",
    )
    .option(
      '--repair',
      'drop entries whose chunk is missing or wrong, index stored chunks S3 vouches for, delete the rest',
    )
    .option(
      '--page-size <n>',
      'chunks and entries per API call (each call must end within 29 s)',
      int('page-size', 1, MAX_VERIFY_LIMIT),
    )
    .option('--json', 'JSON lines: one per problem, then a summary')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(
  run((id: string, o: { pageSize?: number } & VerifyFlags & ConnectionFlags) =>
    verifyCacheCmd(connect(o), id, { ...o, ...(o.pageSize ? { limit: o.pageSize } : {}) }),
  ),
);
connection(
  cache
    .command('gc')
    .description(
      'run the cache collector now (it also runs every 15 minutes): delete what was marked a grace period ago ' +
        'and is still unused, mark what to evict next',
    )
    .option('--dry-run', 'say what a pass would mark and free; change nothing')
    .option('--node <id>', 'only this cache node (repeatable; default: all)', collect)
    .option('--json', 'JSON output')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(run((o: { dryRun?: boolean; node?: string[] } & Json) => cacheGcCmd(connect(o), o)));

const dc = program.command('dc').description('data centers (VRN), registered and removed at runtime');
connection(
  dc
    .command('ls')
    .description('list data centers and the cache node each uses')
    .option('--json', 'JSON lines'),
).action(run((o: Json) => listDcs(connect(o), o)));
connection(
  dc
    .command('add <id>')
    .description('register (or update) a data center; usable at once')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--address <address>', 'address (draft Table 1 "VRN IP addr.")')
    .requiredOption('--location <lat,lon>', 'where it is')
    .option('--home <cacheNode>', 'home cache node (default: the nearest active one)')
    .option('--json', 'JSON output'),
).action(run((id: string, o: Parameters<typeof addDc>[2] & ConnectionFlags) => addDc(connect(o), id, o)));
connection(
  dc.command('rm <id>').description('remove a data center (refused while migrations use it)'),
).action(run((id: string, o: ConnectionFlags) => removeDc(connect(o), id)));

const node = program.command('node').description('cache nodes (CCN)');
connection(
  node
    .command('ls')
    .description('list cache nodes: transfer slots, and space held of the budget, reserved, evictable')
    .option('--json', 'JSON lines')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(run((o: Json) => listNodes(connect(o), o)));
connection(
  node
    .command('set <id>')
    .description(
      'set a cache node active, draining (finishes its work, takes no more) or down; or its capacity or storage budget',
    )
    .addOption(new Option('--status <status>', 'new status').choices(CacheNodeStatus.options))
    .option('--capacity <n>', 'maximum concurrent transfers', int('capacity', 1, 10_000))
    .option('--budget <size>', 'storage budget: 64MiB, 10GiB, 1TB (decimal), bytes; none: unlimited', budget)
    .option('--json', 'JSON output')
    .option('--no-json', 'text even when stdout is not a terminal'),
).action(
  run((id: string, o: { status?: string; capacity?: number; budget?: number | 'none' } & Json) =>
    setNode(connect(o), id, o),
  ),
);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  exitCode = report(err);
}
process.exitCode = exitCode;

/** Explains an error on stderr; returns the exit code (cli/exit-codes.ts). */
function report(err: unknown): number {
  const e = err as Error & { code?: string; exitCode?: number };
  if (e.code?.startsWith('commander.'))
    return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT.ok : EXIT.usage;
  if (err instanceof ApiError) {
    process.stderr.write(`error: ${err.message}\n`);
    for (const issue of err.body?.error.issues ?? [])
      process.stderr.write(`  ${issue.field}: ${issue.reason}\n`);
    if (err.status === 401)
      process.stderr.write(
        '  the API did not accept the credentials: check --token / VMMIG_TOKEN (or, for the local cloud, ' +
          '--data-dir / VMMIG_DATA_DIR: its tokens are in that directory)\n',
      );
    return exitForHttpStatus(err.status);
  }
  if (err instanceof ApiUnreachableError) {
    process.stderr.write(`error: ${err.message}\n${err.hint ? `  ${err.hint}\n` : ''}`);
    return EXIT.unavailable;
  }
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    return err.exitCode;
  }
  process.stderr.write(`error: ${e.message}\n`);
  return EXIT.unavailable;
}
