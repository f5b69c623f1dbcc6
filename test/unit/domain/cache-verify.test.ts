// Where a page of `cache verify` ends: never past what either list covers, and on the last page at the very end.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pageRange, splitPage } from '../../../lambdas/domain/cache-verify.ts';

const d = (n: number) => n.toString(16).padStart(64, '0');
const list = (...ns: number[]) => ns.map((n) => ({ sha256: d(n) }));

describe('pageRange', () => {
  it('runs to the last digest when neither list was cut: entries after the last stored object are checked', () => {
    const r = pageRange({ items: list(1, 2), truncated: false }, { items: list(2, 7, 9), truncated: false });
    expect(r).toEqual({ objects: list(1, 2), entries: list(2, 7, 9) });
  });

  it('ends at the last listed object when the listing was cut (the entries were read up to it)', () => {
    const r = pageRange({ items: list(1, 4), truncated: true }, { items: list(2, 4), truncated: false });
    expect(r).toEqual({ objects: list(1, 4), entries: list(2, 4), end: d(4) });
  });

  it('ends at the last entry when the entries were cut, leaving later objects to the next page', () => {
    const r = pageRange({ items: list(1, 5, 8), truncated: false }, { items: list(2, 5), truncated: true });
    expect(r).toEqual({ objects: list(1, 5), entries: list(2, 5), end: d(5) });
  });

  it('over any sizes and page limit, pages cover every digest once', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.nat(200)),
        fc.uniqueArray(fc.nat(200)),
        fc.integer({ min: 1, max: 7 }),
        (objs, ents, limit) => {
          const objects = [...objs].sort((a, b) => a - b).map(d);
          const entries = [...ents].sort((a, b) => a - b).map(d);
          const seenObjects: string[] = [];
          const seenEntries: string[] = [];
          let cursor: string | undefined;
          for (let pages = 0; ; pages++) {
            expect(pages).toBeLessThan(500);
            const after = objects.filter((s) => cursor === undefined || s > cursor);
            const listed = after.slice(0, limit);
            const listCut = after.length > limit;
            const upTo = listCut ? listed.at(-1) : undefined;
            const inRange = entries.filter(
              (s) => (cursor === undefined || s > cursor) && (upTo === undefined || s <= upTo),
            );
            const read = inRange.slice(0, limit);
            const r = pageRange(
              { items: listed.map((sha256) => ({ sha256 })), truncated: listCut },
              // DynamoDB says "more" whenever it stopped at the limit, even with nothing left.
              { items: read.map((sha256) => ({ sha256 })), truncated: inRange.length >= limit },
            );
            seenObjects.push(...r.objects.map((x) => x.sha256));
            seenEntries.push(...r.entries.map((x) => x.sha256));
            if (r.end === undefined) break;
            cursor = r.end;
          }
          expect(seenObjects).toEqual(objects);
          expect(seenEntries).toEqual(entries);
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
  });
});
