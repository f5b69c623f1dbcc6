// The `vmmig` command: the local cloud, the data center agent, and the operator commands.
import { Command, InvalidArgumentError, Option } from 'commander';
import { ApiError } from './client.ts';
import { runAgent } from './commands/agent.ts';
import { runLocal } from './commands/local.ts';
import { cancel, list, migrate, retry, status } from './commands/migrations.ts';
import { connect, UsageError } from './config.ts';
import { EXIT } from './exit-codes.ts';

const int = (name: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
  return n;
};
const collect = (value: string, previous: string[] = []) => [...previous, value];

const program = new Command('vmmig')
  .description('Move VM disk images between data centers through a CDN (draft-ou-cdn-vm-migration-scheme-00)')
  .showHelpAfterError()
  .exitOverride();

const connection = (cmd: Command) =>
  cmd
    .option('--endpoint <url>', 'API endpoint (default: VMMIG_ENDPOINT, or the local cloud)')
    .option('--token <token>', 'bearer token (default: VMMIG_TOKEN, or the local cloud admin token)')
    .option('--data-dir <dir>', 'local cloud data directory (default: VMMIG_DATA_DIR or ./.vmmig)');

let exitCode: number = EXIT.ok;
const run =
  <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
  async (...args: A) => {
    exitCode = await fn(...args);
  };
type Conn = Parameters<typeof connect>[0];

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
  .option('--topology <cdk.json>', 'read the topology from another cdk.json')
  .option('--quiet', 'log only what agents say')
  .action(
    run(
      (o: {
        dataDir?: string;
        portBase: number;
        agents: boolean;
        onReady?: string;
        topology?: string;
        quiet?: boolean;
      }) => runLocal(o),
    ),
  );

connection(
  program
    .command('agent')
    .description("run a data center's agent (VRN): uploads and downloads images as the API asks")
    .requiredOption('--vrn <id>', 'data center id')
    .requiredOption('--dir <dir>', 'data center directory; images live in <dir>/images')
    .option('--concurrency <n>', 'parallel chunk transfers per job', int('concurrency', 1, 64), 8)
    .option('--poll-interval <ms>', 'how often to ask for work', int('poll-interval', 100, 60_000), 1000)
    .option(
      '--on-ready <command>',
      'shell command run when an image arrives (VMMIG_IMAGE_PATH, VMMIG_VM_ID, VMMIG_IMAGE_FORMAT in its environment)',
    ),
).action(run((o: Parameters<typeof runAgent>[0]) => runAgent(o)));

connection(
  program
    .command('migrate')
    .description('migrate a VM image from one data center to another')
    .requiredOption('--vm <id>', 'VM id')
    .requiredOption('--image-id <id>', "image file name in the source data center's image store")
    .requiredOption('--from <dc>', 'source data center')
    .requiredOption('--to <dc>', 'destination data center (repeat for several)', collect)
    .option('--host <id>', 'host id of the VM at the source (draft Table 1)', 'default')
    .option('--wait', 'follow the migration until it ends')
    .option('--json', 'JSON lines instead of progress bars'),
).action(
  run(
    (
      o: {
        vm: string;
        imageId: string;
        from: string;
        to: string[];
        host: string;
        wait?: boolean;
        json?: boolean;
      } & Conn,
    ) => migrate(connect(o), o),
  ),
);

connection(
  program
    .command('status <id>')
    .description('status, legs, progress and history of a migration')
    .option('--watch', 'follow until it ends')
    .option('--json', 'JSON output'),
).action(run((id: string, o: { watch?: boolean; json?: boolean } & Conn) => status(connect(o), id, o)));

connection(
  program
    .command('ls')
    .description('list migrations, newest first')
    .addOption(
      new Option('--status <status>', 'only this status').choices([
        'PENDING',
        'ADMITTED',
        'AWAITING_DECISION',
        'QUEUED',
        'UPLOADING',
        'REPLICATING',
        'DOWNLOADING',
        'COMPLETED',
        'FAILED',
        'CANCELLED',
      ]),
    )
    .option('--limit <n>', 'how many', int('limit', 1, 1000), 50)
    .option('--json', 'JSON lines'),
).action(run((o: { status?: string; limit: number; json?: boolean } & Conn) => list(connect(o), o)));

connection(
  program.command('cancel <id>').description('cancel a migration').option('--json', 'JSON output'),
).action(run((id: string, o: { json?: boolean } & Conn) => cancel(connect(o), id, o)));

connection(
  program
    .command('retry <id>')
    .description('run a failed or cancelled migration again; what is done is skipped')
    .option('--wait', 'follow it until it ends')
    .option('--json', 'JSON output'),
).action(run((id: string, o: { wait?: boolean; json?: boolean } & Conn) => retry(connect(o), id, o)));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const e = err as Error & { code?: string; exitCode?: number };
  if (e.code?.startsWith('commander.')) {
    exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? EXIT.ok : EXIT.usage;
  } else if (err instanceof ApiError) {
    process.stderr.write(`error: ${err.message}\n`);
    for (const issue of err.body?.error.issues ?? [])
      process.stderr.write(`  ${issue.field}: ${issue.reason}\n`);
    exitCode =
      err.status === 404
        ? EXIT.notFound
        : err.status === 409
          ? EXIT.conflict
          : err.status < 500
            ? EXIT.usage
            : EXIT.unavailable;
  } else if (err instanceof UsageError) {
    process.stderr.write(`error: ${err.message}\n`);
    exitCode = EXIT.usage;
  } else {
    process.stderr.write(`error: ${e.message}\n`);
    exitCode = EXIT.unavailable;
  }
}
process.exitCode = exitCode;
