// `cache verify` (DESIGN §3 "cache space"): where one bounded page of the walk over a cache node ends, and what in
// it needs a look. Both lists come sorted by digest (chunk keys sort as their digests do), each cut at the limit.

export interface Listed {
  readonly sha256: string;
}

export interface Cut<T> {
  readonly items: readonly T[];
  /** Cut at the limit: more may follow the last item. */
  readonly truncated: boolean;
}

/**
 * The page covers the digests after the cursor up to `end`: the last digest of whichever list was cut off (the
 * entries were read up to the last listed object, so theirs is never later), or to the very last digest when
 * neither was, so that entries after the last stored object are checked too. What lies beyond `end` is left
 * to the next page.
 */
export function pageRange<O extends Listed, E extends Listed>(
  objects: Cut<O>,
  entries: Cut<E>,
): { objects: O[]; entries: E[]; end?: string } {
  const end = entries.truncated
    ? entries.items.at(-1)?.sha256
    : objects.truncated
      ? objects.items.at(-1)?.sha256
      : undefined;
  const upTo = <T extends Listed>(list: readonly T[]) =>
    end === undefined ? [...list] : list.filter((x) => x.sha256 <= end);
  return { objects: upTo(objects.items), entries: upTo(entries.items), ...(end ? { end } : {}) };
}

/**
 * Splits a page: the entries to check against storage, those the collector is deleting (its business), and the
 * objects no entry names.
 */
export function splitPage<O extends Listed, E extends Listed & { readonly deleting?: string }>(
  objects: readonly O[],
  entries: readonly E[],
): { check: E[]; deleting: E[]; unindexed: O[] } {
  const named = new Set(entries.map((e) => e.sha256));
  return {
    check: entries.filter((e) => e.deleting === undefined),
    deleting: entries.filter((e) => e.deleting !== undefined),
    unindexed: objects.filter((o) => !named.has(o.sha256)),
  };
}
