/**
 * Readers never wait for writers: read-only opens take no lock, read while a writer holds
 * it, and `db.read` snapshots stay put while other processes commit.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type Database, open } from 'trove';
import { Tally } from './support/model.js';
import { finished, startPeer } from './support/peers.js';
import { scratch } from './support/temp-dir.js';

const HOLD_LOCK = new URL('./children/hold-lock.js', import.meta.url);
const SNAPSHOT_READER = new URL('./children/snapshot-reader.js', import.meta.url);
const PAIR_WRITER = new URL('./children/pair-writer.js', import.meta.url);
const SET_ROOT = new URL('./children/set-root.js', import.meta.url);

const tallyOf = (db: Database) => db.read((tx) => (tx.root.get('tally') as Tally).count);

describe('readers and writers', () => {
  it('a read-only open reads while another process holds the writer lock', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const setup = await open(path, { durability: 'none' });
    await setup.transaction((tx) => {
      tx.root.set('tally', new Tally(1));
    });
    await setup.close();

    const holder = dir.track(startPeer('process', HOLD_LOCK, { path }));
    await holder.next('holding');
    // The lock is really held: a writer that will not wait is refused.
    const writer = dir.track(await open(path, { durability: 'none', busyTimeout: 0 }));
    await assert.rejects(
      writer.transaction(
        (tx) => {
          (tx.root.get('tally') as Tally).count = 99;
        },
        { attempts: 1 },
      ),
      { code: 'TROVE_BUSY' },
    );
    // Readers go on: a new read-only open, its Durus-style root, its snapshots.
    const reader = dir.track(await open(path, { readOnly: true }));
    assert.equal(await tallyOf(reader), 1);
    assert.equal((reader.root.get('tally') as Tally).count, 1);
    assert.equal(await tallyOf(writer), 1);

    holder.send({ type: 'release' });
    await holder.next('committed');
    await finished(holder);
    assert.equal(await tallyOf(reader), 2);
    reader.abort();
    assert.equal((reader.root.get('tally') as Tally).count, 2);
    await writer.transaction((tx) => {
      (tx.root.get('tally') as Tally).count = 3;
    });
    assert.equal(await tallyOf(reader), 3);
  });

  it('read-only opens take no lock: a writer that will not wait commits past open readers', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const writer = dir.track(await open(path, { durability: 'none', busyTimeout: 0 }));
    await writer.transaction((tx) => {
      tx.root.set('tally', new Tally(1));
    });
    // One reader in another process and one here, each inside an open snapshot.
    const child = dir.track(startPeer('process', SNAPSHOT_READER, { path }));
    assert.equal((await child.next('first')).count, 1);
    const reader = dir.track(await open(path, { readOnly: true }));
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const local = reader.read(async (tx) => {
      const before = (tx.root.get('tally') as Tally).count;
      await held;
      return [before, (tx.root.get('tally') as Tally).count];
    });

    for (let i = 2; i <= 4; i++) {
      await writer.transaction(
        (tx) => {
          (tx.root.get('tally') as Tally).count = i;
        },
        { attempts: 1 },
      );
    }
    release();
    assert.deepEqual(await local, [1, 1]);
    child.send({ type: 'again' });
    const second = await child.next('second');
    assert.equal(second.count, 1);
    assert.equal(second.again, 1);
    assert.equal((await child.next('fresh')).count, 4);
    await finished(child);
    assert.equal(await tallyOf(reader), 4);
  });

  it("every transaction start sees another process's commit that finished before it, even within one turn", async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    db.root.set('n', 1);
    await db.commit();
    for (const value of [2, 3]) {
      db.abort(); // a transaction start: it looks at the log
      // Another process commits and ends while this turn of the event loop goes on.
      const child = spawnSync(process.execPath, [
        fileURLToPath(SET_ROOT),
        path,
        'n',
        String(value),
      ]);
      assert.equal(child.status, 0, String(child.stderr));
      db.abort();
      assert.equal(db.root.get('n'), value, 'the default connection');
      assert.equal(await db.read((tx) => tx.root.get('n')), value, 'db.read');
    }
  });

  // Found by a hunt: the iteration went over what this handle had read, without the commit
  // another process had made before it began.
  it("an iteration and a backup begun after another process's commit hold it", async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    db.root.set('n', 1);
    await db.commit();
    const lastTid = db.storage.lastTid();
    const child = spawnSync(process.execPath, [fileURLToPath(SET_ROOT), path, 'n', '2']);
    assert.equal(child.status, 0, String(child.stderr));
    const tids: number[] = [];
    for await (const transaction of db.storage.iterator()) tids.push(transaction.tid);
    assert.ok(tids.length >= 2 && tids.at(-1)! > lastTid, "the other process's commit is last");
    const backup = await db.backup(dir.file('copy.trove'));
    assert.equal(backup.tid, tids.at(-1));
  });

  it('db.read sees one snapshot while another process commits', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    await db.transaction((tx) => {
      tx.root.set('x', new Tally());
      tx.root.set('y', new Tally());
    });
    const writer = dir.track(startPeer('process', PAIR_WRITER, { path, durability: 'none' }));
    await writer.next('started');
    // Waits until a fresh transaction sees a commit of the other process newer than `count`.
    // (A grown file is not enough: it may end in a transaction still being written, which
    // no snapshot includes yet.)
    const committedAfter = async (count: number) => {
      const deadline = Date.now() + 60_000;
      while ((await db.read((tx) => (tx.root.get('x') as Tally).count)) <= count) {
        if (Date.now() > deadline) throw new Error('gave up waiting for another commit');
        await sleep(2);
      }
    };

    let last = 0;
    for (let round = 0; round < 10; round++) {
      const seen = await db.read(async (tx) => {
        const x = tx.root.get('x') as Tally;
        const first = x.count;
        // Another process commits x and y before this snapshot reads y.
        await committedAfter(first);
        const y = tx.root.get('y') as Tally;
        assert.equal(y.count, first, 'x and y from one snapshot');
        assert.equal(x.count, first, 'x read twice in one snapshot');
        return first;
      });
      assert.ok(seen >= last, 'snapshots move forward');
      last = seen;
    }
    // The Durus-style default connection keeps its snapshot until commit or abort.
    db.abort();
    const x = db.root.get('x') as Tally;
    const first = x.count;
    await committedAfter(first);
    assert.equal((db.root.get('y') as Tally).count, first);
    db.abort();
    const second = (db.root.get('x') as Tally).count;
    assert.ok(second > first, 'abort moved to a newer snapshot');
    await committedAfter(second);
    assert.equal((db.root.get('x') as Tally).count, second, 'the new snapshot stays put');
    assert.equal((db.root.get('y') as Tally).count, second);

    writer.send({ type: 'stop' });
    const stopped = await writer.next('stopped');
    await finished(writer);
    const final = await db.read((tx) => [
      (tx.root.get('x') as Tally).count,
      (tx.root.get('y') as Tally).count,
    ]);
    assert.deepEqual(final, [stopped.last, stopped.last]);
  });
});
