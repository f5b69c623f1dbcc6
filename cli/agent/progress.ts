// Reports a job's progress to the API every couple of seconds (heartbeat); the answer says whether the
// migration is still going, so a cancelled job stops.

import type { Heartbeat } from '../../protocol/api/agent.ts';
import { sendHeartbeat } from '../../protocol/api/agent.ts';
import type { ApiClient } from '../client.ts';

const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

export class ProgressReporter {
  bytesDone = 0;
  chunksDone = 0;
  /** Bytes that crossed the network for bytesDone (compressed); reported once any moved. */
  wireBytesDone = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;

  constructor(
    private readonly client: ApiClient,
    private readonly migrationId: string,
    private readonly base: Pick<Heartbeat, 'role' | 'dataCenterId'>,
    public phase: Heartbeat['phase'],
    private readonly abort: AbortController,
    public bytesTotal?: number,
    intervalMs = 2000,
  ) {
    this.timer = setInterval(() => void this.send(), intervalMs);
    this.timer.unref();
  }

  add(bytes: number, chunks = 1): void {
    this.bytesDone += bytes;
    this.chunksDone += chunks;
  }

  addWire(bytes: number): void {
    this.wireBytesDone += bytes;
  }

  async send(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = (async () => {
      try {
        const res = await this.client.call<{ status: string }>(sendHeartbeat, {
          params: { migrationId: this.migrationId },
          json: {
            ...this.base,
            phase: this.phase,
            bytesDone: this.bytesDone,
            chunksDone: this.chunksDone,
            ...(this.bytesTotal !== undefined ? { bytesTotal: this.bytesTotal } : {}),
            ...(this.wireBytesDone > 0 ? { wireBytesDone: this.wireBytesDone } : {}),
          },
        });
        if (ENDED.has(res.body.status)) this.abort.abort(new Error(`migration ${res.body.status}`));
      } catch {
        // Progress is best effort; the transfer itself reports failures.
      } finally {
        this.inFlight = undefined;
      }
    })();
    await this.inFlight;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
