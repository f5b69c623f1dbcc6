// Experiment behind the long-poll finding: CPU the local cloud spends doing nothing for 10 s, per process, while
// its four agents long-poll for work (the API re-queries DynamoDB every WORK_POLL_MS for each waiting agent).
// Usage: npx tsx bench/experiments/idle-cloud.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchCloud } from '../lib/cloud.ts';
import { ProcessSampler } from '../lib/procs.ts';

const scratch = await mkdtemp(join(tmpdir(), 'idle-cloud-'));
const b = await startBenchCloud(scratch, 8);
try {
  await new Promise((r) => setTimeout(r, 5000)); // start-up settles
  const sampler = new ProcessSampler();
  sampler.start();
  await new Promise((r) => setTimeout(r, 10_000));
  const w = sampler.stop();
  process.stdout.write(`idle: ${w.coresBusy.toFixed(3)} cores busy\n`);
  for (const r of w.roles)
    process.stdout.write(`  ${r.role}: ${(r.cpuSeconds / w.wallSeconds).toFixed(3)} cores\n`);
} finally {
  await b.dispose();
  await rm(scratch, { recursive: true, force: true });
}
