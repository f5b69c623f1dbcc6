// How an idle agent learns of work without keeping an API Lambda busy: it long-polls its data center's SQS queue
// (20 s per request, with its own AWS credentials) and looks at its work (GET /v1/agent/work) when a wake-up
// arrives, when a job ends, and every few minutes regardless (a lost wake-up costs at most that long).
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type ReceiveMessageCommandOutput,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { openWorkQueue, type WorkQueue } from '../../protocol/api/agent.ts';
import type { ApiClient } from '../client.ts';

/** The longest an agent goes without looking at its work, woken or not. */
export const LOOK_EVERY_MS = 5 * 60_000;

export type Wait = 'woken' | 'timeout' | 'interrupted';

/**
 * One long poll at a time, for as long as the agent runs. A poll is never abandoned half-way: SQS may hand a
 * message to a receive whose caller already went away, and that message is then invisible for the queue's
 * visibility timeout — a wake-up lost for that long. So the receive loop runs on its own, and waiting only reads
 * what it found.
 */
export class WorkQueueListener {
  private woken = false;
  private failure: Error | undefined;
  private notify: (() => void) | undefined;

  private constructor(
    private readonly sqs: SQSClient,
    private readonly queue: WorkQueue,
    signal: AbortSignal,
  ) {
    void this.receiveLoop(signal);
  }

  /**
   * The data center's queue, listened to until `signal` aborts, or undefined (with the reason) when the agent
   * cannot use one.
   */
  static async open(
    client: ApiClient,
    signal: AbortSignal,
    /** Default: a client with the SDK's credential chain (the agent's own role), in the queue's region. */
    sqs?: (region: string) => SQSClient,
  ): Promise<{ listener: WorkQueueListener } | { reason: string }> {
    try {
      const { body } = await client.call<WorkQueue>(openWorkQueue, { signal });
      const make = sqs ?? ((region: string) => new SQSClient({ region }));
      return { listener: new WorkQueueListener(make(body.region), body, signal) };
    } catch (err) {
      return { reason: (err as Error).message };
    }
  }

  private async receiveLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let out: ReceiveMessageCommandOutput;
      try {
        out = await this.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.queue.queueUrl,
            WaitTimeSeconds: this.queue.waitSeconds,
            MaxNumberOfMessages: 10,
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        if (!signal.aborted) this.failure = err as Error;
        break;
      }
      const messages = out.Messages ?? [];
      if (messages.length === 0) continue;
      // Wake-ups are hints: one look answers them all, so they are deleted at once.
      await this.sqs
        .send(
          new DeleteMessageBatchCommand({
            QueueUrl: this.queue.queueUrl,
            Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
          }),
        )
        .catch(() => {});
      this.woken = true;
      this.notify?.();
    }
    this.notify?.();
  }

  /**
   * Waits up to `ms` for a wake-up (consuming it; one that came while nobody waited counts). `interrupt` ends the
   * wait early (a job finished). A failed receive (no credentials, the queue deleted) is thrown: the caller falls
   * back to polling.
   */
  async wait(ms: number, interrupt: AbortSignal): Promise<Wait> {
    const outcome = await new Promise<Wait>((resolve) => {
      const settle = (wait: Wait) => {
        clearTimeout(timer);
        interrupt.removeEventListener('abort', onInterrupt);
        this.notify = undefined;
        resolve(wait);
      };
      const onInterrupt = () => settle('interrupted');
      const timer = setTimeout(() => settle('timeout'), ms);
      this.notify = () => settle('woken');
      interrupt.addEventListener('abort', onInterrupt, { once: true });
      if (this.woken || this.failure) settle('woken');
      else if (interrupt.aborted) settle('interrupted');
    });
    if (this.failure) throw this.failure;
    if (outcome === 'woken') this.woken = false;
    return outcome;
  }
}
