// --limit-rate: a token bucket per direction shared by all of an agent's parallel transfers, so the data
// center's link gets at most the configured bytes per second on average (bursts up to one second's worth).

export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond;
  }

  /** Waits until `bytes` may be sent. Callers are served in order. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(async () => {
      for (;;) {
        signal?.throwIfAborted();
        const now = Date.now();
        this.tokens = Math.min(
          this.bytesPerSecond,
          this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
        );
        this.last = now;
        // A chunk larger than the bucket goes once the bucket is full, leaving a debt.
        if (this.tokens >= Math.min(bytes, this.bytesPerSecond)) {
          this.tokens -= bytes;
          return;
        }
        const wait = ((Math.min(bytes, this.bytesPerSecond) - this.tokens) / this.bytesPerSecond) * 1000;
        await sleep(Math.max(1, wait), signal);
      }
    });
    this.queue = turn.catch(() => {});
    return signal ? untilAborted(turn, signal) : turn;
  }
}

// A stopped transfer must not sit out the bucket's debt (hours for a big chunk at a low rate), nor keep the
// process alive with a pending timer.
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return untilAborted(
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener('abort', () => clearTimeout(timer), { once: true });
    }),
    signal,
  );
}

/** `p`, or the abort reason as soon as the signal aborts (a caller queued behind others leaves at once). */
function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** `50M`, `1.5G`, `800K`, `1000000` → bytes per second (binary multiples). */
export function parseRate(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:\/s)?$/i.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a rate: use e.g. 500K, 20M, 1G (bytes per second)`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[
    (m[2] ?? '').toUpperCase() as '' | 'K' | 'M' | 'G'
  ];
  const value = Math.floor(Number(m[1]) * unit);
  if (value < 1024) throw new Error(`rate ${text} is below 1 KiB/s`);
  return value;
}
