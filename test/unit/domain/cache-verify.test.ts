// Where a page of `cache verify` ends: never past what any list covers (chunks stored alone, entries, packs), and on
// the last page at the very end; what a pack needs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { packVerdict, pageRange, splitPage } from '../../../lambdas/domain/cache-verify.ts';

const d = (n: number) => n.toString(16).padStart(64, '0');
const list = (...ns: number[]) => ns.map((n) => ({ sha256: d(n) }));

describe('pageRange', () => {
  it('runs to the last digest when neither list was cut: entries after the last stored object are checked', () => {
    const r = pageRange({ items: list(1, 2), truncated: false }, { items: list(2, 7, 9), truncated: false });
    expect(r).toEqual({ objects: list(1, 2), entries: list(2, 7, 9), packs: [] });
  });

  it('ends at the last listed object when the listing was cut (the entries were read up to it)', () => {
    const r = pageRange({ items: list(1, 4), truncated: true }, { items: list(2, 4), truncated: false });
    expect(r).toEqual({ objects: list(1, 4), entries: list(2, 4), packs: [], end: d(4) });
  });

  it('ends at the last entry when the entries were cut, leaving later objects to the next page', () => {
    const r = pageRange({ items: list(1, 5, 8), truncated: false }, { items: list(2, 5), truncated: true });
    expect(r).toEqual({ objects: list(1, 5), entries: list(2, 5), packs: [], end: d(5) });
  });

  it('ends at the earliest cut list: packs cut before the chunks leave later chunks and entries to the next page', () => {
    const r = pageRange(
      { items: list(1, 6), truncated: true },
      { items: list(2, 3, 6), truncated: false },
      { items: list(3), truncated: true },
    );
    expect(r).toEqual({ objects: list(1), entries: list(2, 3), packs: list(3), end: d(3) });
  });

  it('over any sizes and page limit, pages cover every digest once', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(200)),
        fc.uniqueArray(fc.nat(200)),
        fc.uniqueArray(fc.nat(200)),
        fc.integer({ min: 1, max: 7 }),
        fc.integer({ min: 1, max: 3 }),
        (objs, ents, pks, limit, packLimit) => {
          const objects = [...objs].sort((a, b) => a - b).map(d);
          const entries = [...ents].sort((a, b) => a - b).map(d);
          const packs = [...pks].sort((a, b) => a - b).map(d);
          const seenObjects: string[] = [];
          const seenEntries: string[] = [];
          const seenPacks: string[] = [];
          let cursor: string | undefined;
          for (let pages = 0; ; pages++) {
            expect(pages).toBeLessThan(1000);
            const after = objects.filter((s) => cursor === undefined || s > cursor);
            const listed = after.slice(0, limit);
            const listCut = after.length > limit;
            const packsAfter = packs.filter((s) => cursor === undefined || s > cursor);
            const packsListed = packsAfter.slice(0, packLimit);
            const packsCut = packsAfter.length > packLimit;
            const upTo = [listCut ? listed.at(-1) : undefined, packsCut ? packsListed.at(-1) : undefined]
              .filter((x): x is string => x !== undefined)
              .sort()[0];
            const inRange = entries.filter(
              (s) => (cursor === undefined || s > cursor) && (upTo === undefined || s <= upTo),
            );
            const read = inRange.slice(0, limit);
            const r = pageRange(
              { items: listed.map((sha256) => ({ sha256 })), truncated: listCut },
              // DynamoDB says "more" whenever it stopped at the limit, even with nothing left.
              { items: read.map((sha256) => ({ sha256 })), truncated: inRange.length >= limit },
              { items: packsListed.map((sha256) => ({ sha256 })), truncated: packsCut },
            );
            seenObjects.push(...r.objects.map((x) => x.sha256));
            seenEntries.push(...r.entries.map((x) => x.sha256));
            seenPacks.push(...r.packs.map((x) => x.sha256));
            if (r.end === undefined) break;
            cursor = r.end;
          }
          expect(seenObjects).toEqual(objects);
          expect(seenEntries).toEqual(entries);
          expect(seenPacks).toEqual(packs);
        },
      ),
    );
  });
});

describe('splitPage', () => {
  it("checks live entries, counts the collector's, and names objects no entry names", () => {
    const entries = [{ sha256: d(1) }, { sha256: d(2), deleting: 'now' }, { sha256: d(3) }];
    const r = splitPage(list(2, 3, 4), entries);
    expect(r.check.map((e) => e.sha256)).toEqual([d(1), d(3)]);
    expect(r.deleting.map((e) => e.sha256)).toEqual([d(2)]);
    expect(r.unindexed).toEqual(list(4));
    expect(r.superseded).toEqual([]);
  });

  it('a chunk stored alone whose entry names a pack is a spare copy, not unindexed', () => {
    const entries = [{ sha256: d(1), pack: d(9) }, { sha256: d(2) }];
    const r = splitPage(list(1, 2), entries);
    expect(r.unindexed).toEqual([]);
    expect(r.superseded).toEqual([{ object: { sha256: d(1) }, entry: entries[0] }]);
    expect(r.check).toEqual(entries);
  });
});

describe('packVerdict', () => {
  const P = d(0xf0);
  const toc = list(1, 2, 3);
  const at = (entries: [number, { pack?: string; deleting?: string }][]) =>
    new Map(entries.map(([n, e]) => [d(n), e]));

  it('nothing when every chunk is indexed and an entry names the pack', () => {
    expect(
      packVerdict(
        P,
        toc,
        at([
          [1, { pack: P }],
          [2, { pack: P }],
          [3, {}],
        ]),
      ),
    ).toEqual({ action: 'none', loose: 0 });
  });

  it('index when chunks of it are not indexed at the node', () => {
    expect(packVerdict(P, toc, at([[1, { pack: P }]]))).toEqual({ action: 'index', loose: 2 });
    expect(packVerdict(P, toc, at([]))).toEqual({ action: 'index', loose: 3 });
  });

  it('delete when every chunk is indexed in another object, and nothing names it', () => {
    expect(
      packVerdict(
        P,
        toc,
        at([
          [1, {}],
          [2, { pack: d(7) }],
          [3, {}],
        ]),
      ),
    ).toEqual({ action: 'delete', loose: 0 });
  });

  it('leaves a pack the collector is deleting to it', () => {
    expect(packVerdict(P, toc, at([[1, { pack: P, deleting: 'now' }]]))).toEqual({
      action: 'collector',
      loose: 2,
    });
  });
});
