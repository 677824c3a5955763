/**
 * Loads are served from a cache of file blocks shared by every connection of a process, and
 * record bytes are handed out as views of those blocks. What a connection decodes must be
 * its own: changing a loaded byte array in place must not change what others load.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open, PersistentMap } from 'trove';
import { scratch } from './support/temp-dir.js';

describe('the read cache', () => {
  it('byte arrays loaded from it are copies: changing one in place changes no other load', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const writer = await open(path, { durability: 'none' });
    await writer.transaction((tx) => {
      const bytes = new PersistentMap<string, unknown>();
      bytes.set('buffer', Buffer.from([1, 2, 3]));
      bytes.set('array', new Uint8Array([4, 5, 6]));
      bytes.set('floats', new Float64Array([0.5, 1.5]));
      tx.root.set('bytes', bytes);
    });
    // Enough after it that the record's block lies wholly inside the log, so it is cached.
    await writer.transaction((tx) => {
      tx.root.set('filler', 'x'.repeat(200_000));
    });
    await writer.close();

    const db = dir.track(await open(path, { durability: 'none' }));
    const read = (tx: { root: PersistentMap<string, unknown> }) =>
      tx.root.get('bytes') as PersistentMap<string, Uint8Array | Float64Array>;
    await db.read(async (first) => {
      const mine = read(first);
      (mine.get('buffer') as Uint8Array)[0] = 99;
      (mine.get('array') as Uint8Array)[0] = 99;
      (mine.get('floats') as Float64Array)[0] = 99;
      // Another pooled connection loads the same records while this one is still open.
      await db.read((second) => {
        const theirs = read(second);
        assert.deepEqual([...(theirs.get('buffer') as Uint8Array)], [1, 2, 3]);
        assert.deepEqual([...(theirs.get('array') as Uint8Array)], [4, 5, 6]);
        assert.deepEqual([...(theirs.get('floats') as Float64Array)], [0.5, 1.5]);
      });
    });
    assert.deepEqual((await db.integrityCheck()).ok, true);
  });
});
