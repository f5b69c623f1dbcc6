// The data center's agent (VRN side of the draft's V-C protocol): polls the API for work and runs each piece
// — chunk and describe an image, upload missing chunks, download and deliver an image — at most a few at a time.
import { findQemu } from '../../local/qemu.ts';
import { failSource, getWork, type WorkItem } from '../../protocol/api/agent.ts';
import { type AgentOptions, JobCancelled, JobFailure } from './context.ts';
import { deliver } from './destination.ts';
import { handover, release } from './local-jobs.ts';
import { provideManifest, uploadMissing } from './source.ts';

const MAX_JOBS = 4;
const LONG_POLL_SECONDS = 10;
/** Reported to the API on every poll, with the qemu-img version when there is one. */
export const AGENT_VERSION = '0.1.0';

export class Agent {
  private readonly running = new Map<string, AbortController>();
  private readonly retryAt = new Map<string, { at: number; failures: number }>();
  private wake: (() => void) | undefined;

  constructor(private readonly opts: AgentOptions) {}

  /** Polls until the signal aborts; running jobs are aborted with it. */
  /** Polls until the signal aborts; running jobs are aborted with it. */
  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.opts;
    log(
      `agent for ${this.opts.dataCenterId} polling ${this.opts.client.endpoint} (images in ${this.opts.dir}/images)`,
    );
    let apiDown = false;
    while (!signal.aborted) {
      let started = 0;
      try {
        // Idle: a long poll answers as soon as work appears. Busy: a short poll every interval.
        const waitSeconds = this.running.size === 0 ? LONG_POLL_SECONDS : 0;
        const res = await this.opts.client.call<{ items: WorkItem[] }>(getWork, {
          query: { waitSeconds, agentVersion: AGENT_VERSION, qemuImg: (await findQemu())?.version },
          signal,
        });
        if (apiDown) log('API reachable again');
        apiDown = false;
        for (const work of res.body.items) if (this.maybeStart(work, signal)) started++;
      } catch (err) {
        if (signal.aborted) break;
        if (!apiDown) log(`cannot reach the API: ${(err as Error).message}; retrying`);
        apiDown = true;
      }
      if (started === 0) await this.idle(signal);
    }
    for (const c of this.running.values()) c.abort(new Error('agent stopping'));
  }

  /** Sleeps a poll interval, or less when a job finishes (its next step may already be waiting). */
  private idle(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wake = undefined;
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, this.opts.pollIntervalMs);
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private maybeStart(work: WorkItem, signal: AbortSignal): boolean {
    const key = `${work.migrationId}#${work.action}`;
    if (this.running.has(key) || this.running.size >= MAX_JOBS) return false;
    const retry = this.retryAt.get(key);
    if (retry && Date.now() < retry.at) return false;
    const abort = new AbortController();
    const onStop = () => abort.abort(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    this.running.set(key, abort);
    void this.runJob(work, abort)
      .then(() => this.retryAt.delete(key))
      .catch((err: Error) => {
        const failures = (retry?.failures ?? 0) + 1;
        this.retryAt.set(key, { at: Date.now() + Math.min(30_000, 1000 * 2 ** failures), failures });
        if (!abort.signal.aborted) this.opts.log(`${key}: ${err.message} (will retry)`);
      })
      .finally(() => {
        signal.removeEventListener('abort', onStop);
        this.running.delete(key);
        this.wake?.();
      });
    return true;
  }

  private async runJob(work: WorkItem, abort: AbortController): Promise<void> {
    const { log } = this.opts;
    log(`${work.migrationId}: ${work.action} ${work.imageId} (${work.role})`);
    try {
      switch (work.action) {
        case 'download':
          return await deliver(this.opts, work, abort);
        case 'handover':
          return await handover(this.opts, work, abort);
        case 'manifest':
          return await provideManifest(this.opts, work, abort);
        case 'upload':
          return await uploadMissing(this.opts, work, abort);
        case 'release':
          return await release(this.opts, work);
      }
    } catch (err) {
      if (abort.signal.aborted || err instanceof JobCancelled) return;
      if (err instanceof JobFailure && work.role === 'source') {
        log(`${work.migrationId}: source failed: ${err.message}`);
        await this.opts.client.call(failSource, {
          params: { migrationId: work.migrationId },
          json: { reason: err.message },
        });
        return;
      }
      throw err;
    }
  }
}
