/**
 * Backup: a hot copy while another process commits is a consistent, checked database; a
 * point-in-time copy holds the state at that tid or time; an existing target is refused.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { describe, it } from 'node:test';
import fsx from 'fs-native-extensions';
import {
  type Database,
  FileStorage,
  MemoryStorage,
  open,
  type Tid,
  type TransactionRecord,
  tidToDate,
} from 'trove';
import { FaultyOps, withFileOps } from './support/faulty-ops.js';
import { Item, Tally } from './support/model.js';
import { finished, startPeer } from './support/peers.js';
import { scratch, sleep, waitUntil } from './support/temp-dir.js';

const PAIR_WRITER = new URL('./children/pair-writer.js', import.meta.url);

async function assertIntact(db: Database): Promise<void> {
  const report = await db.integrityCheck();
  assert.deepEqual(report.failures, []);
  assert.equal(report.ok, true);
}

async function withCopy<T>(path: string, fn: (db: Database) => Promise<T>): Promise<T> {
  const db = await open(path, { readOnly: true });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const payload = (db: Database) => db.read((tx) => (tx.root.get('item') as Item).payload);

describe('backup', () => {
  it('a hot backup while another process commits is consistent and passes the integrity check', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const setup = await open(path, { durability: 'none' });
    await setup.transaction((tx) => {
      tx.root.set('x', new Tally());
      tx.root.set('y', new Tally());
    });
    await setup.close();
    const writer = dir.track(startPeer('process', PAIR_WRITER, { path, durability: 'none' }));
    await writer.next('started');
    // The backups are taken from a read-only handle, as a backup tool would.
    const db = dir.track(await open(path, { readOnly: true }));

    let last = 0;
    for (let i = 0; i < 5; i++) {
      const size = statSync(path).size;
      await waitUntil(() => statSync(path).size > size, 'another commit');
      const target = dir.file(`copy-${i}.trove`);
      const result = await db.backup(target);
      assert.equal(result.path, target);
      assert.equal(result.bytes, statSync(target).size);
      const count = await withCopy(target, async (copy) => {
        await assertIntact(copy);
        assert.equal(copy.stats().storage.lastTid, result.tid);
        return copy.read((tx) => {
          const x = (tx.root.get('x') as Tally).count;
          assert.equal(
            (tx.root.get('y') as Tally).count,
            x,
            'x and y were always written together',
          );
          return x;
        });
      });
      assert.ok(count >= 1 && count >= last);
      last = count;
    }
    writer.send({ type: 'stop' });
    const stopped = await writer.next('stopped');
    await finished(writer);
    assert.ok((stopped.last as number) >= last);

    // A copy is a database of its own: it takes commits, and the original does not see them.
    const copy = dir.track(await open(dir.file('copy-0.trove'), { durability: 'none' }));
    await copy.transaction((tx) => {
      (tx.root.get('x') as Tally).count = -1;
    });
    assert.equal(await db.read((tx) => (tx.root.get('x') as Tally).count), stopped.last);
    // Nothing but the copies (and their indexes) was left in the directory.
    for (const name of readdirSync(dir.dir)) assert.match(name, /^(app|copy-\d)\.trove(\.index)?$/);
  });

  describe('point in time', () => {
    /** Commits payload v1..v4 of one Item, a few ms apart; returns their tids. */
    async function history(db: Database): Promise<Tid[]> {
      const tids: Tid[] = [];
      db.root.set('item', new Item('item', 'v1'));
      tids.push(await db.commit());
      for (const version of ['v2', 'v3', 'v4']) {
        await sleep(3);
        (db.root.get('item') as Item).payload = version;
        tids.push(await db.commit());
      }
      return tids;
    }

    it('backup(target, { at }) holds the state at that tid or time', async (t) => {
      const dir = scratch(t);
      const path = dir.file();
      const db = dir.track(await open(path, { durability: 'none' }));
      const [t1, t2, t3, t4] = (await history(db)) as [Tid, Tid, Tid, Tid];

      const cases: Array<[string, Tid | Date, string, Tid]> = [
        ['t1', t1, 'v1', t1],
        ['t2', t2, 'v2', t2],
        ['between t2 and t3', t3 - 1, 'v2', t2],
        ['the time of t3', tidToDate(t3), 'v3', t3],
        ['after the last commit', new Date(Date.now() + 60_000), 'v4', t4],
      ];
      for (const [name, at, expected, tid] of cases) {
        const target = dir.file(`at-${name.replaceAll(' ', '-')}.trove`);
        const result = await db.backup(target, { at });
        assert.equal(result.tid, tid, name);
        await withCopy(target, async (copy) => {
          assert.equal(await payload(copy), expected, name);
          assert.equal(copy.stats().storage.lastTid, tid, name);
          await assertIntact(copy);
        });
      }
      // The same from a historical view: its backup is the state it shows.
      const view = dir.track(await open(path, { at: t2 }));
      const fromView = dir.file('from-view.trove');
      assert.equal((await view.backup(fromView)).tid, t2);
      await withCopy(fromView, async (copy) => {
        assert.equal(await payload(copy), 'v2');
      });
      assert.equal(await payload(db), 'v4');
    });

    // Found in a scale hunt: the copy was synced on the event loop, a second for 2 GB.
    it('a backup syncs its copy through the file operations, off the event loop', async (t) => {
      const dir = scratch(t);
      const path = dir.file();
      const faults = new FaultyOps(path);
      const storage = await FileStorage.open(path, withFileOps({ durability: 'none' }, faults.ops));
      const db = dir.track(await open({ storage }));
      await history(db);
      const syncing = faults.holdNextSync('other file');
      const target = dir.file('copy.trove');
      const backingUp = db.backup(target);
      const first = await Promise.race([
        syncing.reached.then(() => 'the copy is syncing'),
        backingUp.then(() => 'done without it'),
      ]);
      assert.equal(first, 'the copy is syncing');
      // Meanwhile the event loop goes on, and the copy is not yet where it goes.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(existsSync(target), false);
      syncing.open();
      assert.equal((await backingUp).path, target);
      await withCopy(target, async (copy) => {
        assert.equal(await payload(copy), 'v4');
      });
    });

    it('a backup a pack overtakes holds the file it began on: its history, its header, its index', async (t) => {
      const dir = scratch(t);
      const path = dir.file();
      const faults = new FaultyOps(path);
      const storage = await FileStorage.open(path, withFileOps({ durability: 'none' }, faults.ops));
      const db = dir.track(await open({ storage }));
      const [t1, t2, , t4] = (await history(db)) as [Tid, Tid, Tid, Tid];

      // The backup waits at its first write into the copy; meanwhile a pack of the same
      // handle drops the history and switches the handle to the packed file, and a commit
      // lands there.
      const copying = faults.holdNextWrite('other file');
      const target = dir.file('copy.trove');
      const backingUp = db.backup(target);
      await copying.reached;
      await db.pack();
      (db.root.get('item') as Item).payload = 'v5';
      await db.commit();
      copying.open();
      const result = await backingUp;

      assert.equal(result.tid, t4);
      assert.equal(result.bytes, statSync(target).size);
      // Saved for the copy (no rebuild at its first open), as for a backup nothing overtook.
      assert.ok(existsSync(`${target}.index`));
      await withCopy(target, async (copy) => {
        assert.equal(await payload(copy), 'v4');
        assert.equal(copy.stats().storage.lastTid, t4);
        await assertIntact(copy);
      });
      // The copy keeps the history the pack removed from the original, and its header is the
      // one the backup began with, not the packed file's (whose history horizon would refuse
      // a point-in-time backup of the copy at t1).
      for (const [at, expected] of [
        [t1, 'v1'],
        [t2, 'v2'],
      ] as const) {
        const view = await open(target, { at, readOnly: true });
        try {
          assert.equal(await payload(view), expected);
        } finally {
          await view.close();
        }
      }
      const atT1 = dir.file('copy-at-t1.trove');
      await withCopy(target, async (copy) => {
        assert.equal((await copy.backup(atT1, { at: t1 })).tid, t1);
      });
      await withCopy(atT1, async (copy) => {
        assert.equal(await payload(copy), 'v1');
      });
      const view = await open(path, { at: t2 });
      try {
        assert.throws(() => (view.root.get('item') as Item).payload, {
          code: 'TROVE_CONFLICT',
          kind: 'read',
        });
      } finally {
        await view.close();
      }
      assert.equal(await payload(db), 'v5');
    });

    // Found by a bug hunt: a view as of a tid or date past 2^53 microseconds opened, then
    // failed every read (InvalidArgumentError about a tid the user never passed).
    it('a view or backup as of the far future shows the latest state; before 1970, nothing', async (t) => {
      const dir = scratch(t);
      const path = dir.file();
      const db = dir.track(await open(path, { durability: 'none' }));
      const tids = await history(db);
      const far = [Number.MAX_SAFE_INTEGER, new Date(8.64e15), new Date('2300-01-01T00:00:00Z')];
      for (const [i, at] of far.entries()) {
        const view = await open(path, { at });
        try {
          assert.equal(await payload(view), 'v4');
        } finally {
          await view.close();
        }
        const target = dir.file(`far-${i}.trove`);
        assert.equal((await db.backup(target, { at })).tid, tids.at(-1));
      }
      // And as of before 1970: before the first commit (found in review: both failed with
      // errors about a negative tid, or about a pack that never happened).
      const early = await open(path, { at: new Date(-1) });
      try {
        assert.equal(early.storage.lastTid(), 0);
      } finally {
        await early.close();
      }
      assert.equal((await db.backup(dir.file('early.trove'), { at: new Date(-1) })).tid, 0);
    });

    it('a historical view opened at a tid reads what a backup at that tid holds', async (t) => {
      const dir = scratch(t);
      const path = dir.file();
      const db = dir.track(await open(path, { durability: 'none' }));
      const tids = await history(db);
      for (const [i, tid] of tids.entries()) {
        const target = dir.file(`at-${i}.trove`);
        await db.backup(target, { at: tid });
        const view = await open(path, { at: tid });
        try {
          await withCopy(target, async (copy) => {
            assert.equal(await payload(copy), await payload(view));
            assert.equal(await payload(copy), `v${i + 1}`);
          });
        } finally {
          await view.close();
        }
      }
    });
  });

  // A storage of another kind is backed up from its transactions; after a pack of its own,
  // one may hold records that keep older tids, which a committed transaction may not.
  it('a backup of a storage whose transactions hold records of older tids opens', async (t) => {
    const dir = scratch(t);
    class Repacked extends MemoryStorage {
      protected override async *_iterator(fromTid: Tid) {
        const all: TransactionRecord[] = [];
        for await (const transaction of super._iterator(fromTid)) all.push(transaction);
        const last = all.pop()!;
        yield* all;
        // Copies of older revisions beside the last one's, as a pack keeping history writes
        // objects it rescues.
        const written = new Set(last.records.map((record) => record.oid));
        const older = all.flatMap((transaction) => transaction.records);
        yield {
          ...last,
          records: [...last.records, ...older.filter((record) => !written.has(record.oid))],
        };
      }
    }
    const storage = new Repacked();
    const db = await open({ storage });
    db.root.set('a', new Item('a', 'one'));
    await db.commit();
    db.root.set('b', 2);
    await db.commit();
    const target = dir.file('copy.trove');
    await db.backup(target);
    await db.close();
    const copy = dir.track(await open(target));
    assert.deepEqual([(copy.root.get('a') as Item).payload, copy.root.get('b')], ['one', 2]);
    assert.equal((await copy.integrityCheck()).ok, true);
  });

  // Known limit until now: the copy's views older than the pack read objects as missing.
  it("a backup of a packed MemoryStorage keeps its history horizon: views before it refuse, as the storage's do", async (t) => {
    const dir = scratch(t);
    const storage = new MemoryStorage();
    const db = await open({ storage });
    db.root.set('item', new Item('item', 'one'));
    const t1 = await db.commit();
    (db.root.get('item') as Item).payload = 'two';
    const t2 = await db.commit();
    await db.pack({ keepHistorySince: t2 });
    await assert.rejects(db.backup(dir.file('too-old.trove'), { at: t1 }), {
      code: 'TROVE_INVALID_ARGUMENT',
      argument: 'options.at',
    });
    const target = dir.file('copy.trove');
    await db.backup(target);
    const before = dir.track(await open(target, { at: t1 }));
    assert.throws(() => (before.root.get('item') as Item).payload, { code: 'TROVE_CONFLICT' });
    const at = dir.track(await open(target, { at: t2 }));
    assert.equal((at.root.get('item') as Item).payload, 'two');
    await db.close();
  });

  // Found by a bug hunt: a MemoryStorage's pack changed the transactions a backup was
  // copying, so a backup as of a past tid held no root at all, and a full one recorded no
  // history horizon while its history was gone.
  for (const kind of ['memory', 'file'] as const) {
    it(`a backup made while a pack runs is the database as of when it began (${kind})`, async (t) => {
      const dir = scratch(t);
      const db = dir.track(
        kind === 'memory'
          ? await open({ storage: new MemoryStorage() })
          : await open(dir.file(), { durability: 'none' }),
      );
      const tids: number[] = [];
      for (let i = 1; i <= 5; i++) {
        db.root.set('n', i);
        db.root.set(`k${i}`, new Item(`k${i}`, String(i)));
        tids.push(await db.commit());
      }
      const [past, whole] = await Promise.all([
        db.backup(dir.file('past.trove'), { at: tids[2]! }),
        db.backup(dir.file('whole.trove')),
        db.pack(),
      ]);
      assert.equal(past.tid, tids[2]);
      const pastCopy = dir.track(await open(past.path, { readOnly: true }));
      assert.deepEqual([...pastCopy.root.keys()].sort(), ['k1', 'k2', 'k3', 'n']);
      assert.equal(pastCopy.root.get('n'), 3);
      assert.equal((await pastCopy.integrityCheck()).ok, true);
      // The whole copy has the history the database had when the backup began: all of it.
      const wholeAt = dir.track(await open(whole.path, { at: tids[0]! }));
      assert.deepEqual([...wholeAt.root.keys()].sort(), ['k1', 'n']);
      assert.equal(wholeAt.root.get('n'), 1);
    });
  }

  // Found by a bug hunt: a backup as of a later tid took the damaged transaction for the end
  // of the log and wrote a copy that stopped short, with no error; a whole backup copied the
  // damage without a word.
  it('a backup of a log with a damaged transaction refuses with CorruptionError and writes nothing', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = await open(path, { durability: 'none' });
    const tids: number[] = [];
    for (let i = 0; i < 6; i++) {
      db.root.set(`k${i}`, `value-${i}`);
      tids.push(await db.commit());
    }
    await db.close();
    const bytes = readFileSync(path);
    const at = bytes.indexOf('value-3');
    assert.ok(at > 0);
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(path, bytes);
    const source = dir.track(await open(path, { readOnly: true }));
    for (const options of [{ at: tids[4]! }, {}]) {
      await assert.rejects(source.backup(dir.file('copy.trove'), options), {
        code: 'TROVE_CORRUPTION',
      });
      assert.deepEqual(readdirSync(dir.dir).sort(), ['app.trove', 'app.trove.index']);
    }
    // Before the damage, a copy is whole.
    const before = await source.backup(dir.file('before.trove'), { at: tids[1]! });
    assert.equal(before.tid, tids[1]);
    const copy = dir.track(await open(before.path, { readOnly: true }));
    assert.deepEqual([...copy.root.keys()].sort(), ['k0', 'k1']);
  });

  // Found in review: a MemoryStorage's backup whose index could not be saved failed, with
  // the copy in place (a retry found the target taken); a file storage's only reported it.
  it('an index the copy cannot have is reported, not a failure: the copy is whole', async (t) => {
    const dir = scratch(t);
    const memory = await open({ storage: new MemoryStorage() });
    t.after(() => memory.close());
    const logged: string[] = [];
    const db = dir.track(
      await open(dir.file(), { durability: 'none', logger: (m) => logged.push(m) }),
    );
    for (const source of [db, memory]) {
      await source.transaction((tx) => {
        tx.root.set('n', 1);
      });
    }
    const warned: unknown[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => warned.push(args);
    t.after(() => {
      console.warn = warn;
    });
    for (const [i, source] of [db, memory].entries()) {
      const target = dir.file(`copy-${i}.trove`);
      // A directory where the index goes: it cannot be renamed into place.
      mkdirSync(`${target}.index`);
      writeFileSync(`${target}.index/in-the-way`, '');
      const result = await source.backup(target);
      assert.ok(result.bytes > 0);
      await withCopy(target, async (copy) => {
        assert.equal(await copy.read((tx) => tx.root.get('n')), 1);
      });
    }
    console.warn = warn;
    assert.equal(logged.length, 1, 'the file storage reported it to its logger');
    assert.equal(warned.length, 1, 'the memory storage reported it with console.warn');
  });

  it('refuses a target that exists, and leaves it as it was', async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const db = dir.track(await open(path, { durability: 'none' }));
    await db.transaction((tx) => {
      tx.root.set('n', 1);
    });
    const target = dir.file('precious.trove');
    writeFileSync(target, 'precious bytes');
    await assert.rejects(db.backup(target), { code: 'TROVE_INVALID_ARGUMENT' });
    await assert.rejects(db.backup(target, { at: new Date() }), { code: 'TROVE_INVALID_ARGUMENT' });
    assert.equal(readFileSync(target, 'utf8'), 'precious bytes');
    // Its own file is a target that exists too.
    await assert.rejects(db.backup(path), { code: 'TROVE_INVALID_ARGUMENT' });
    await assert.rejects(db.backup(dir.dir), { code: 'TROVE_INVALID_ARGUMENT' });
    assert.equal(await db.read((tx) => tx.root.get('n')), 1);
    await assertIntact(db);
    assert.deepEqual(readdirSync(dir.dir).sort(), ['app.trove', 'precious.trove']);
  });

  it('removes what a killed backup to the same target left (nobody locks it), but not a live one', async (t) => {
    const dir = scratch(t);
    const memory = await open({ storage: new MemoryStorage() });
    t.after(() => memory.close());
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    for (const source of [db, memory]) {
      await source.transaction((tx) => {
        tx.root.set('n', 1);
      });
    }
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!;
    assert.ok(dead > 0);
    for (const [i, source] of [db, memory].entries()) {
      const target = dir.file(`copy-${i}.trove`);
      const left = `${target}.backup-${dead}-0bad0bad0bad`;
      // Locked: a backup under way (its pid is no matter: a process of another container, or
      // this process's own after a restart, is told by the lock alone).
      const live = `${target}.backup-${process.pid}-600d600d600d`;
      // Of this process's pid, unlocked: an earlier process with the same pid left it.
      const leftOwn = `${target}.backup-${process.pid}-0bad0bad0bae`;
      writeFileSync(left, 'half a backup');
      writeFileSync(leftOwn, 'half a backup');
      writeFileSync(live, 'a backup under way');
      const writing = openSync(live, 'r+');
      t.after(() => closeSync(writing));
      assert.ok(fsx.tryLock(writing, 0, 1));
      await source.backup(target);
      assert.equal(existsSync(left), false);
      assert.equal(existsSync(leftOwn), false);
      assert.equal(readFileSync(live, 'utf8'), 'a backup under way');
      await withCopy(target, async (copy) => {
        assert.equal(await copy.read((tx) => tx.root.get('n')), 1);
      });
      // Found by a bug hunt: a backup killed after its copy got the target's name, before
      // its own name was removed, leaves a second name of the copy; the next backup to that
      // target is refused, and removed it only after that check.
      writeFileSync(left, 'a second name of the copy');
      await assert.rejects(source.backup(target), { code: 'TROVE_INVALID_ARGUMENT' });
      assert.equal(existsSync(left), false);
    }
  });
});
