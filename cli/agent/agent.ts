// The data center's agent (VRN side of the draft's V-C protocol): polls the API for work and runs each piece
// — chunk and describe an image, upload missing chunks, download and deliver an image — at most a few at a time.
import { findQemu } from '../../local/qemu.ts';
import { failSource, getWork, type WorkItem } from '../../protocol/api/agent.ts';
import { type AgentOptions, JobCancelled, JobFailure } from './context.ts';
import { deliver } from './destination.ts';
import { handover, release } from './local-jobs.ts';
import { provideManifest, uploadMissing } from './source.ts';
import { LOOK_EVERY_MS, WorkQueueListener } from './work-queue.ts';

const MAX_JOBS = 4;
/** Reported to the API on every poll, with the qemu-img version when there is one. */
export const AGENT_VERSION = '0.1.0';

export class Agent {
  private readonly running = new Map<string, AbortController>();
  private readonly retryAt = new Map<string, { at: number; failures: number }>();
  private wake: (() => void) | undefined;
  /** Work seen but not started (job slots full, a retry not due): look again soon, not in minutes. */
  private deferred = false;

  constructor(private readonly opts: AgentOptions) {}

  /**
   * Runs until the signal aborts (running jobs are aborted with it): looks at its work, starts what it can, then
   * waits on its work queue until woken, a job ends, or LOOK_EVERY_MS passes. Without a usable queue it polls the
   * API every poll interval instead (and says so).
   */
  async run(signal: AbortSignal): Promise<void> {
    const { log } = this.opts;
    log(
      `agent for ${this.opts.dataCenterId} at ${this.opts.client.endpoint} (images in ${this.opts.dir}/images)`,
    );
    let queue: WorkQueueListener | undefined;
    // A queue that could not be opened or used is tried again after this (meanwhile the API is asked).
    let openQueueAt = 0;
    let apiDown = false;
    while (!signal.aborted) {
      if (!queue && Date.now() >= openQueueAt) {
        const opened = await WorkQueueListener.open(this.opts.client, signal);
        if ('listener' in opened) {
          queue = opened.listener;
          log('listening on the work queue');
        } else {
          openQueueAt = Date.now() + LOOK_EVERY_MS;
          if (!signal.aborted && !apiDown)
            log(`no work queue (${opened.reason}): asking the API every ${this.opts.pollIntervalMs} ms`);
        }
      }
      try {
        const res = await this.opts.client.call<{ items: WorkItem[] }>(getWork, {
          query: { agentVersion: AGENT_VERSION, qemuImg: (await findQemu())?.version },
          signal,
        });
        if (apiDown) log('API reachable again');
        apiDown = false;
        this.deferred = false;
        for (const work of res.body.items) this.maybeStart(work, signal);
      } catch (err) {
        if (signal.aborted) break;
        if (!apiDown) log(`cannot reach the API: ${(err as Error).message}; retrying`);
        apiDown = true;
      }
      if (queue && !apiDown) {
        try {
          await this.waitOnQueue(queue, signal);
          continue;
        } catch (err) {
          if (signal.aborted) break;
          log(
            `work queue unusable (${(err as Error).message}): asking the API every ${this.opts.pollIntervalMs} ms`,
          );
          queue = undefined;
          openQueueAt = Date.now() + LOOK_EVERY_MS;
        }
      }
      await this.idle(signal);
    }
    for (const c of this.running.values()) c.abort(new Error('agent stopping'));
  }

  /** Waits for a wake-up, a finished job (its next step may be waiting already), or the periodic look. */
  private async waitOnQueue(queue: WorkQueueListener, signal: AbortSignal): Promise<void> {
    const interrupt = new AbortController();
    const stop = () => interrupt.abort();
    this.wake = stop;
    signal.addEventListener('abort', stop, { once: true });
    // Work refused for now (all job slots taken, or a retry not due yet) is looked at again soon.
    const waitMs = this.deferred ? Math.min(LOOK_EVERY_MS, this.opts.pollIntervalMs * 5) : LOOK_EVERY_MS;
    try {
      await queue.wait(waitMs, interrupt.signal);
    } finally {
      this.wake = undefined;
      signal.removeEventListener('abort', stop);
    }
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
    if (this.running.has(key)) return false;
    const retry = this.retryAt.get(key);
    if (this.running.size >= MAX_JOBS || (retry && Date.now() < retry.at)) {
      this.deferred = true;
      return false;
    }
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
