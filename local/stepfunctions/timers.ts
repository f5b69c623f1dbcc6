// Timers of the local Step Functions service. setTimeout holds at most 2^31-1 ms (~24.8 days; a longer delay
// fires at once), while Step Functions waits up to a year: long delays are chained. `scale` shrinks every duration
// of the workflow's own clock (Wait, TimeoutSeconds, HeartbeatSeconds, the execution's lifetime) so that a test can
// drive a week of waiting in seconds; the wall clock functions see is untouched.

const MAX_DELAY_MS = 2 ** 31 - 1;

export interface LongTimer {
  cancel(): void;
}

/** Runs `fn` after `ms` milliseconds, however long. */
export function longTimeout(fn: () => void, ms: number): LongTimer {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const arm = (remaining: number) => {
    if (cancelled) return;
    if (remaining <= MAX_DELAY_MS) {
      timer = setTimeout(fn, Math.max(0, remaining));
    } else {
      timer = setTimeout(() => arm(remaining - MAX_DELAY_MS), MAX_DELAY_MS);
    }
    timer.unref?.();
  };
  arm(ms);
  return {
    cancel() {
      cancelled = true;
      clearTimeout(timer);
    },
  };
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function longSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = () => {
      timer.cancel();
      resolve();
    };
    const timer = longTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
