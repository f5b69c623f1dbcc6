// `vmmig agent`: run a data center's agent in the foreground until SIGINT/SIGTERM.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Agent } from '../agent/agent.ts';
import { RateLimiter } from '../agent/rate-limit.ts';
import { type ConnectionFlags, connect } from '../config.ts';

const limiter = (bytesPerSecond: number | undefined) =>
  bytesPerSecond ? new RateLimiter(bytesPerSecond) : undefined;

export interface AgentFlags extends ConnectionFlags {
  readonly vrn: string;
  readonly dir: string;
  readonly concurrency: number;
  readonly pollInterval: number;
  readonly onReady?: string;
  readonly onMigrated?: string;
  readonly limitRate?: number;
  readonly limitUpload?: number;
  readonly limitDownload?: number;
}

export async function runAgent(flags: AgentFlags): Promise<number> {
  const client = connect(flags, flags.vrn);
  const dir = resolve(flags.dir);
  await mkdir(resolve(dir, 'images'), { recursive: true });
  const controller = new AbortController();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => controller.abort(new Error(signal)));
  }
  const agent = new Agent({
    client,
    dataCenterId: flags.vrn,
    dir,
    concurrency: flags.concurrency,
    pollIntervalMs: flags.pollInterval,
    onReady: flags.onReady,
    onMigrated: flags.onMigrated,
    limits: {
      upload: limiter(flags.limitUpload ?? flags.limitRate),
      download: limiter(flags.limitDownload ?? flags.limitRate),
    },
    log: (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`),
  });
  await agent.run(controller.signal);
  return 0;
}
