/**
 * The newest-revision index, kept in pages of oids, and its file: for any records set (oids
 * in runs anywhere in the range, up to the largest, set again and again), the index answers
 * as a map by oid would, and the index file gives back the same index. A page is made only
 * for oids that have records, so oids dropped by a pack, or reserved and never used, take
 * no memory and no room in the file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { open, PersistentList } from 'trove';
import type * as IndexFileModule from '../../dist/storage/file/index-file.js';
import type * as OidIndexModule from '../../dist/storage/file/oid-index.js';

// Tests run from build/test/properties/, the package from dist/.
const internal = <T>(path: string): Promise<T> =>
  import(new URL(`../../../dist/storage/file/${path}`, import.meta.url).href);
const { OidIndex, PAGE_OIDS } = await internal<typeof OidIndexModule>('oid-index.js');
const indexFile = await internal<typeof IndexFileModule>('index-file.js');

const MAX_OID = 0xffff_fffe;

/** Oids in a few runs, as a file's live objects lie: near 0, anywhere, at the top. */
const anyOid = fc.oneof(
  fc.integer({ min: 0, max: 3 * PAGE_OIDS }),
  fc.integer({ min: 0, max: MAX_OID }),
  fc.integer({ min: MAX_OID - 2 * PAGE_OIDS, max: MAX_OID }),
);
const setsOf = (oid: fc.Arbitrary<number>) =>
  fc.array(
    fc.tuple(oid, fc.integer({ min: 1, max: 2 ** 48 }), fc.integer({ min: 1, max: 2 ** 53 - 1 })),
    { maxLength: 200 },
  );
/**
 * Records set, in order: an oid, its record's offset (never 0) and tid. Mostly in the first
 * pages: an oid high in the range gives the index a table of millions of pages (32 MiB,
 * tens of milliseconds to make), so fewer runs have one.
 */
const setsArbitrary = fc.oneof(
  { arbitrary: setsOf(fc.integer({ min: 0, max: 8 * PAGE_OIDS })), weight: 4 },
  { arbitrary: setsOf(anyOid), weight: 1 },
);

/** An index with `sets` applied, and the map by oid it must agree with. */
function build(sets: readonly (readonly [number, number, number])[]) {
  const index = new OidIndex();
  const model = new Map<number, { offset: number; tid: number }>();
  for (const [oid, offset, tid] of sets) {
    index.set(oid, offset, tid);
    model.set(oid, { offset, tid });
  }
  return { index, model };
}

function assertAgrees(
  index: OidIndexModule.OidIndex,
  model: Map<number, { offset: number; tid: number }>,
) {
  const oids = [...model.keys()].sort((a, b) => a - b);
  assert.deepEqual([...index.oids()], oids);
  assert.equal(index.count, model.size);
  assert.equal(index.length, oids.length === 0 ? 0 : oids.at(-1)! + 1);
  for (const [oid, { offset, tid }] of model) {
    assert.equal(index.offset(oid), offset);
    assert.equal(index.tid(oid), tid);
    // Its neighbours, in its page and past it, have no record unless set.
    for (const other of [oid - 1, oid + 1, oid + PAGE_OIDS]) {
      if (!model.has(other)) {
        assert.equal(index.offset(other), 0);
        assert.equal(index.tid(other), 0);
      }
    }
  }
  // Pages only for the oids that have records.
  const pages = new Set(oids.map((oid) => Math.floor(oid / PAGE_OIDS))).size;
  assert.ok(index.byteSize >= pages * PAGE_OIDS * 16);
  assert.ok(index.byteSize <= pages * PAGE_OIDS * 16 + (index.length / PAGE_OIDS + 1) * 8);
}

describe('the oid index, in pages', () => {
  const dir = mkdtempSync(join(tmpdir(), 'trove-oid-index-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('answers as a map by oid would, for records anywhere in the range', () => {
    fc.assert(
      fc.property(setsArbitrary, (sets) => {
        const { index, model } = build(sets);
        assertAgrees(index, model);
      }),
      { numRuns: 150 },
    );
  });

  it('is given back whole by its file, which holds a page for each page in use', () => {
    const path = join(dir, 'app.trove');
    fc.assert(
      fc.property(
        setsArbitrary,
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        // Read whole, or in pieces of any size (a gibibyte in use), page boundaries or not.
        fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 3 * PAGE_OIDS * 16 })),
        (sets, generation, pieceBytes) => {
          const { index, model } = build(sets);
          // A log long enough to hold a record for each page.
          const coveredOffset = 2 ** 40;
          const saved = {
            generation,
            coveredOffset,
            lastTid: 77,
            lastChecksum: 0xfedcba98,
            nextOid: 12,
            index,
          };
          indexFile.saveIndex(path, saved, false);
          const pages = [...index.pages()].length;
          assert.equal(pages, index.pageCount);
          const size = 64 + pages * (4 + PAGE_OIDS * 16);
          assert.equal(statSync(indexFile.indexPath(path)).size, size);
          assert.equal(indexFile.savedSize(index), size);
          const loaded = indexFile.loadIndex(path, generation, coveredOffset, pieceBytes);
          assert.ok(loaded !== undefined);
          assert.deepEqual(
            { ...loaded, index: undefined },
            {
              generation,
              coveredOffset,
              lastTid: 77,
              lastChecksum: 0xfedcba98,
              nextOid: 12,
              index: undefined,
            },
          );
          assertAgrees(loaded.index, model);
          // The loaded index goes on taking records, in its pages and in new ones.
          const more = sets
            .slice(0, 5)
            .map(([oid, offset, tid]) => [oid === 0 ? 1 : oid - 1, offset + 1, tid] as const);
          for (const [oid, offset, tid] of more) {
            loaded.index.set(oid, offset, tid);
            model.set(oid, { offset, tid });
          }
          assertAgrees(loaded.index, model);
          // Another generation's file is not this data file's index.
          assert.equal(indexFile.loadIndex(path, generation ^ 1n, coveredOffset), undefined);
        },
      ),
      { numRuns: 50 },
    );
  });

  // The index was an array by oid: 16 bytes for every oid ever handed out, live or not, in
  // memory and in the file, and a pack did not shrink it.
  it('oids a pack dropped take no room: the index holds pages only for live objects', async () => {
    const path = join(dir, 'churn.trove');
    // The root's page and the page of the two objects made last, and the table of pages.
    const twoPages = 2 * PAGE_OIDS * 16;
    const db = await open(path, { durability: 'none' });
    try {
      const dropped = 20 * PAGE_OIDS;
      db.root.set(
        'items',
        new PersistentList(Array.from({ length: dropped }, () => new PersistentList())),
      );
      await db.commit();
      db.root.delete('items');
      db.root.set('kept', new PersistentList([new PersistentList()]));
      await db.commit();
      await db.pack();
      assert.equal(db.stats().storage.objects, 3);
      const indexBytes = db.stats().storage.indexBytes as number;
      assert.ok(indexBytes >= twoPages && indexBytes < twoPages + 1024, `${indexBytes}`);
    } finally {
      await db.close();
    }
    assert.equal(statSync(`${path}.index`).size, 64 + 2 * (4 + PAGE_OIDS * 16));
    const again = await open(path, { durability: 'none' });
    try {
      assert.ok((again.stats().storage.indexBytes as number) < twoPages + 1024);
      assert.equal(again.root.get('kept').length, 1);
      assert.equal((await again.integrityCheck()).ok, true);
    } finally {
      await again.close();
    }
  });
});
