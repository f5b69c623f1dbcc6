// `cache verify` (DESIGN §3 "cache space"): where one bounded page of the walk over a cache node ends, and what in
// it needs a look. Every list comes sorted by digest, each cut at its limit: index entries and chunks stored alone
// (chunk keys sort as their digests do) by the chunk's digest, packs by the pack's. One cursor walks all three
// (both are uniform SHA-256 digests): a page covers the same digest range in each.

export interface Listed {
  readonly sha256: string;
}

export interface Cut<T> {
  readonly items: readonly T[];
  /** Cut at the limit: more may follow the last item. */
  readonly truncated: boolean;
}

const NOTHING: Cut<never> = { items: [], truncated: false };

/**
 * The page covers the digests after the cursor up to `end`: the earliest last digest of the lists that were cut off
 * (the entries were read up to the earliest last listed object, so theirs is never later), or to the very last
 * digest when none was, so that entries after the last stored object are checked too. What lies beyond `end` is left
 * to the next page.
 */
export function pageRange<O extends Listed, E extends Listed, P extends Listed = never>(
  objects: Cut<O>,
  entries: Cut<E>,
  packs: Cut<P> = NOTHING,
): { objects: O[]; entries: E[]; packs: P[]; end?: string } {
  const ends = [objects, entries, packs]
    .filter((list) => list.truncated)
    .map((list) => list.items.at(-1)?.sha256)
    .filter((d): d is string => d !== undefined)
    .sort();
  const end = ends[0];
  const upTo = <T extends Listed>(list: readonly T[]) =>
    end === undefined ? [...list] : list.filter((x) => x.sha256 <= end);
  return {
    objects: upTo(objects.items),
    entries: upTo(entries.items),
    packs: upTo(packs.items),
    ...(end ? { end } : {}),
  };
}

/**
 * Splits a page: the entries to check against storage, those the collector is deleting (its business), the chunks
 * stored alone that no entry names, and those whose entry names another object (a pack): a spare copy.
 */
export function splitPage<
  O extends Listed,
  E extends Listed & { readonly deleting?: string; readonly pack?: string | undefined },
>(
  objects: readonly O[],
  entries: readonly E[],
): { check: E[]; deleting: E[]; unindexed: O[]; superseded: { object: O; entry: E }[] } {
  const bySha = new Map(entries.map((e) => [e.sha256, e]));
  const unindexed: O[] = [];
  const superseded: { object: O; entry: E }[] = [];
  for (const o of objects) {
    const entry = bySha.get(o.sha256);
    if (entry === undefined) unindexed.push(o);
    else if (entry.pack !== undefined) superseded.push({ object: o, entry });
  }
  return {
    check: entries.filter((e) => e.deleting === undefined),
    deleting: entries.filter((e) => e.deleting !== undefined),
    unindexed,
    superseded,
  };
}

/**
 * What a pack no entry fully accounts for needs, from its table of contents and the entries of its chunks at the
 * node: nothing (every chunk indexed, and some entry names the pack), `index` (chunks no entry names: index those it
 * holds intact), `delete` (every chunk in it is indexed in another object: nothing needs it), or `collector` (an
 * entry naming it is being deleted: the collector's business, left alone).
 */
export function packVerdict(
  pack: string,
  toc: readonly Listed[],
  there: ReadonlyMap<string, { readonly pack?: string | undefined; readonly deleting?: string }>,
): { action: 'none' | 'index' | 'delete' | 'collector'; loose: number } {
  const naming = toc.map((e) => there.get(e.sha256)).filter((e) => e?.pack === pack);
  const loose = toc.filter((e) => !there.has(e.sha256)).length;
  if (naming.some((e) => e?.deleting !== undefined)) return { action: 'collector', loose };
  if (loose > 0) return { action: 'index', loose };
  return { action: naming.length > 0 ? 'none' : 'delete', loose };
}
