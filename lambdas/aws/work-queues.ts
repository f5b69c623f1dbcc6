// One SQS queue per data center, named <WORK_QUEUE_PREFIX><data center id>: how an idle agent learns that work
// exists without keeping a Lambda busy. The agent long-polls its own queue (20 s, with its own credentials); a
// message is only a wake-up ("look at your work"), the work itself stays in the Migrations table, so a lost or
// repeated message costs at most one extra look.
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueUrlCommand,
  QueueDoesNotExist,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';

/** A wake-up received but not deleted (its agent went away) is visible again after this long. */
const WAKE_UP_VISIBILITY_SECONDS = 5;
/** Wake-ups older than this are useless (the agent looks at its work at start and every few minutes anyway). */
const WAKE_UP_RETENTION_SECONDS = 3600;
/** ReceiveMessage waits at most this long on SQS (its maximum). */
export const LONG_POLL_SECONDS = 20;

export interface WakeUp {
  readonly migrationId: string;
  readonly action: string;
}

export class WorkQueues {
  readonly #urls = new Map<string, string>();

  constructor(
    private readonly sqs: SQSClient,
    private readonly prefix: string,
    /** Where the queues live (the control plane's region). */
    readonly region: string,
  ) {}

  queueName(dataCenterId: string): string {
    return `${this.prefix}${dataCenterId}`;
  }

  /** Creates the data center's queue if missing (CreateQueue is idempotent for equal attributes); its URL. */
  async ensure(dataCenterId: string): Promise<string> {
    const out = await this.sqs.send(
      new CreateQueueCommand({
        QueueName: this.queueName(dataCenterId),
        Attributes: {
          MessageRetentionPeriod: String(WAKE_UP_RETENTION_SECONDS),
          ReceiveMessageWaitTimeSeconds: String(LONG_POLL_SECONDS),
          // A wake-up handed to a receive whose agent went away comes back soon, not after the default 30 s.
          VisibilityTimeout: String(WAKE_UP_VISIBILITY_SECONDS),
          SqsManagedSseEnabled: 'true',
        },
      }),
    );
    if (!out.QueueUrl) throw new Error(`CreateQueue returned no URL for ${this.queueName(dataCenterId)}`);
    this.#urls.set(dataCenterId, out.QueueUrl);
    return out.QueueUrl;
  }

  /**
   * Tells the data center's agent to look at its work. A queue that does not exist means its agent never started
   * (it looks at its work when it does): nothing to wake.
   */
  async wake(dataCenterId: string, wakeUp: WakeUp): Promise<'sent' | 'no-queue'> {
    const url = await this.#url(dataCenterId);
    if (!url) return 'no-queue';
    try {
      await this.sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: JSON.stringify(wakeUp) }));
      return 'sent';
    } catch (err) {
      if (!(err instanceof QueueDoesNotExist)) throw err;
      this.#urls.delete(dataCenterId);
      return 'no-queue';
    }
  }

  async remove(dataCenterId: string): Promise<void> {
    const url = await this.#url(dataCenterId);
    this.#urls.delete(dataCenterId);
    if (!url) return;
    try {
      await this.sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    } catch (err) {
      if (!(err instanceof QueueDoesNotExist)) throw err;
    }
  }

  async #url(dataCenterId: string): Promise<string | undefined> {
    const known = this.#urls.get(dataCenterId);
    if (known) return known;
    try {
      const out = await this.sqs.send(new GetQueueUrlCommand({ QueueName: this.queueName(dataCenterId) }));
      if (out.QueueUrl) this.#urls.set(dataCenterId, out.QueueUrl);
      return out.QueueUrl;
    } catch (err) {
      if (err instanceof QueueDoesNotExist) return undefined;
      throw err;
    }
  }
}
