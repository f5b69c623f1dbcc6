// Child process entry of the naive baseline: runs the job given as JSON in argv and prints its result as JSON.
import { type NaiveJob, runNaive } from './naive.ts';

const job = JSON.parse(process.argv[2] ?? '{}') as NaiveJob;
process.stdout.write(`${JSON.stringify(await runNaive(job))}\n`);
