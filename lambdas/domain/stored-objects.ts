// The objects index entries name at a cache node (protocol/chunk-key.ts objectKeyOf): a pack holds many chunks, so
// entries that name the same object are looked at, copied and deleted together.
import { objectKeyOf } from '../../protocol/chunk-key.ts';
import { type StoredChunk, storedEnd, tocBytes } from '../../protocol/pack.ts';
import { mapLimit } from './concurrency.ts';

export type ObjectState = 'present' | 'missing' | 'mismatch';

/** Entries grouped by the object they name, in first-seen order. */
export function byObject<E extends StoredChunk>(entries: Iterable<E>): Map<string, E[]> {
  const out = new Map<string, E[]>();
  for (const e of entries) {
    const key = objectKeyOf(e);
    const list = out.get(key);
    if (list) list.push(e);
    else out.set(key, [e]);
  }
  return out;
}

/**
 * The state of each entry's object (results keep the input order), one HEAD per object: the entry that ends last
 * stands for its object (present for it means present for every entry of the same object). Only when that one is a
 * mismatch (the object too short, or not what its key names) is each entry of the object looked at alone.
 */
export async function objectStates<E extends StoredChunk>(
  entries: readonly E[],
  concurrency: number,
  stateOf: (entry: E) => Promise<ObjectState>,
): Promise<ObjectState[]> {
  const groups = [...byObject(entries.map((e, i) => ({ ...e, i }))).values()];
  const out = new Array<ObjectState>(entries.length);
  await mapLimit(groups, concurrency, async (group) => {
    const last = group.reduce((a, b) => (storedEnd(b) > storedEnd(a) ? b : a));
    const state = await stateOf(entries[last.i] as E);
    for (const g of group)
      out[g.i] = g === last || state !== 'mismatch' ? state : await stateOf(entries[g.i] as E);
  });
  return out;
}

/** Bytes of a pack from its table of contents: the entries' stored bytes and the table itself. */
export function packBytes(toc: readonly { readonly stored: number }[]): number {
  return toc.reduce((n, e) => n + e.stored, 0) + tocBytes(toc.length);
}
