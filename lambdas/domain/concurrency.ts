// Bounded parallelism without a dependency.

/** Runs `fn` over `items` with at most `limit` in flight; results keep the input order. Fails fast. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

export type Settled<R> = { status: 'fulfilled'; value: R } | { status: 'rejected'; reason: unknown };

/**
 * Runs `fn` over `items` with at most `limit` in flight and lets every call settle, failures included (results keep
 * the input order): for work that must not be abandoned midway, e.g. before giving up claims it holds.
 */
export async function settleAll<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<Settled<R>[]> {
  return mapLimit(items, limit, async (item, i): Promise<Settled<R>> => {
    try {
      return { status: 'fulfilled', value: await fn(item, i) };
    } catch (reason) {
      return { status: 'rejected', reason };
    }
  });
}
