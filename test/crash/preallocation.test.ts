import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  CorruptionError,
  type Database,
  type FileStorage,
  NotFoundError,
  open,
  PersistentMap,
  StorageIOError,
} from 'trove';
import { commit, put } from '../storage/storage-assertions.js';
import {
  closeQuietly,
  commits,
  countingSyncs,
  dataEnd,
  deferred,
  type FileOps,
  fileOps,
  format,
  logEnd,
  logReader,
  openFileStorage,
  quiet,
  recovery,
  rejection,
  type ScannedTransaction,
  tempDir,
  tornFiles,
  transactions,
  txBuilder,
  zeroRange,
} from './support.js';

/** How far a handle's first growth of the file goes, and the largest (FileStorage's). */
const FIRST_STEP = 64 * 1024;
const MAX_STEP = 1024 * 1024;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('preallocated space after the log', () => {
  const dir = tempDir('trove-prealloc-');
  after(() => dir.remove());
  let files = 0;

  /** Asserts that opening the file fails with a CorruptionError at `offset`, cutting nothing. */
  async function assertRefused(path: string, offset: number, readOnly = false): Promise<void> {
    const before = fs.readFileSync(path);
    const error = await rejection(() => open(path, { readOnly, logger: quiet }));
    assert.ok(error instanceof CorruptionError, String(error));
    assert.equal(error.code, 'TROVE_CORRUPTION');
    assert.equal(error.offset, offset);
    assert.ok(fs.readFileSync(path).equals(before), 'nothing was cut');
    assert.deepEqual(tornFiles(path), []);
  }

  /** A closed database with `commits` separate commits after the first. */
  async function withCommits(commits: number): Promise<string> {
    const path = join(dir.path, `db-${++files}.trove`);
    const db = await open(path, { logger: quiet });
    db.root.set('m', new PersistentMap([['v', 0]]));
    await db.commit();
    for (let k = 1; k <= commits; k++) {
      db.root.get('m').set('v', k);
      await db.commit();
    }
    await db.close();
    return path;
  }

  it('the file grows in steps of zeros, each twice the last up to 1 MiB, and is just its log after close', async () => {
    const path = join(dir.path, 'steps.trove');
    const db = await open(path, { logger: quiet });
    try {
      db.root.set('m', new PersistentMap([['v', 0]]));
      await db.commit();
      const sizes = new Set<number>();
      for (let k = 1; k <= 50; k++) {
        db.root.get('m').set('v', k);
        await db.commit();
        sizes.add(fs.statSync(path).size);
      }
      // 50 small commits overwrite zeros: the file's size never changed after the first.
      assert.deepEqual([...sizes], [FIRST_STEP]);
      assert.ok(logEnd(path) < FIRST_STEP);
      assert.ok(dataEnd(path) <= logEnd(path), 'only zeros after the log');
      // Each commit larger than what is left grows the file again, to the next multiple of
      // a step twice the last one's, up to 1 MiB.
      for (let growth = 1; growth <= 6; growth++) {
        db.root.set('big', 'x'.repeat(2 * MAX_STEP + growth));
        await db.commit();
        const step = Math.min(FIRST_STEP * 2 ** growth, MAX_STEP);
        const size = fs.statSync(path).size;
        assert.equal(size % step, 0, `growth ${growth}: a multiple of ${step}`);
        assert.ok(size > logEnd(path) && size - logEnd(path) <= step);
        assert.ok(dataEnd(path) <= logEnd(path), 'only zeros after the log');
      }
    } finally {
      await db.close();
    }
    assert.equal(fs.statSync(path).size, logEnd(path), 'given back at close');
    assert.deepEqual(tornFiles(path), []);
  });

  it('a handle that closes gives the space back while another handle goes on committing', async () => {
    const path = await withCommits(3);
    const a = await open(path, { logger: quiet });
    const b = await open(path, { logger: quiet });
    let c: Database | undefined;
    try {
      a.root.get('m').set('v', 'from a');
      await a.commit();
      assert.equal(fs.statSync(path).size, FIRST_STEP);
      await a.close();
      assert.equal(fs.statSync(path).size, logEnd(path), 'a trimmed the zeros at close');
      // b read the log with zeros after it; the zeros are gone now, and b's next commit
      // grows the file again.
      assert.equal(await b.read((tx) => tx.root.get('m').get('v')), 'from a');
      await b.transaction((tx) => {
        tx.root.get('m').set('v', 'from b');
      });
      assert.equal(fs.statSync(path).size, FIRST_STEP, "b's first growth");
      c = await open(path, { readOnly: true, logger: quiet });
      assert.equal(c.root.get('m').get('v'), 'from b');
      assert.deepEqual(await c.integrityCheck(), { ok: true, failures: [] });
    } finally {
      await closeQuietly(c);
      await closeQuietly(b);
      await closeQuietly(a);
    }
  });

  // Zeros where a committed transaction was, then a valid transaction of a later commit:
  // committed data was lost (a zeroed sector). The later commit was written after the
  // zeroed one was durable, so that is damage, not the unfinished write of a crash.
  it('zeros where a committed transaction was, before a later commit: CorruptionError', async () => {
    const path = await withCommits(3);
    const txs = transactions(path);
    const zeroed = txs.at(-2)!;
    zeroRange(path, zeroed.offset, zeroed.offset + zeroed.length);
    await assertRefused(path, zeroed.offset, true);
    await assertRefused(path, zeroed.offset);
  });

  // The same for the length at the end of a committed transaction: read as not written yet,
  // but committed transactions follow it.
  it('a zeroed length at the end of a committed transaction, before later commits: CorruptionError', async () => {
    const path = await withCommits(3);
    const damagedTx = transactions(path).at(-2)!;
    zeroRange(path, damagedTx.offset + damagedTx.length - 8, damagedTx.offset + damagedTx.length);
    await assertRefused(path, damagedTx.offset);
  });

  // An oid reservation is written without a sync of its own. A durable writer syncs it
  // before a commit follows it, so whatever comes before a durable commit is durable and
  // zeros there are damage; the commit needs no pointer back (a pointer would make such
  // damage look like a crash's torn tail).
  it('a commit after an oid reservation syncs it first: zeros there later are damage', async () => {
    const path = await withCommits(1);
    const counting = countingSyncs();
    const storage = await openFileStorage(path, { fileOps: counting.ops, logger: quiet });
    const [oid] = await storage.newOids(1);
    assert.equal(counting.syncs, 0, 'a reservation alone is not synced');
    await commit(storage, [put(oid!, 'uses the reserved oid', 0)]);
    assert.equal(counting.syncs, 2, 'the reservation, then the commit');
    await commit(storage, [put(oid!, 'again', storage.load(oid!).tid)]);
    assert.equal(counting.syncs, 3, 'after a durable commit, one sync');
    await storage.close();
    const txs = transactions(path);
    const [reservation, first] = txs.slice(-3) as [ScannedTransaction, ScannedTransaction];
    assert.equal(reservation.status, format.TxStatus.oids);
    assert.equal(first.meta.group, undefined);
    zeroRange(path, reservation.offset, reservation.offset + reservation.length);
    await assertRefused(path, reservation.offset);
  });

  // A commit written after this handle's own synced commit needs no pointer back: damage to
  // that earlier commit is damage, whatever follows.
  it('a commit right after a synced one points back at nothing', async () => {
    const path = await withCommits(3);
    const txs = transactions(path);
    for (const tx of txs.slice(-3)) assert.equal(tx.meta.group, undefined);
  });

  // Found in review: the group of the last transaction loaded was taken as it was read; a
  // group that is not a number (a file trove did not write) then went into the next commit's
  // pointer back. #apply and recovery take such a group for none, and so does a load now.
  it('a last transaction whose group is not a number points back as one without a group', async () => {
    const path = await withCommits(1);
    const last = transactions(path).at(-1)!;
    const end = last.offset + last.length;
    const { bytes } = txBuilder.buildTransaction(
      {
        tid: last.tid + 1,
        status: format.TxStatus.oids,
        meta: { oidHigh: 100, group: 'x' } as never,
        records: [],
      },
      end,
    );
    fs.appendFileSync(path, bytes);
    fs.rmSync(`${path}.index`, { force: true });
    const crafted = transactions(path).at(-1)!;
    assert.equal(crafted.offset, end);
    assert.equal(crafted.meta.group, 'x');
    // A handle without syncs points its first commit back at the last transaction loaded.
    const storage = await openFileStorage(path, { durability: 'none', logger: quiet });
    try {
      const [oid] = await storage.newOids(1);
      await commit(storage, [put(oid!, 'after the crafted one')]);
    } finally {
      await storage.close();
    }
    assert.equal(transactions(path).at(-1)!.meta.group, crafted.offset);
  });

  // Found in review: two reservations in a row, neither synced; a system crash keeps the
  // second and loses the first. The second says where the reservations not yet durable
  // begin (`group`), so that is a torn tail, not damage before a later write.
  it('zeros where the first of two unsynced reservations was: cut off, not refused', async () => {
    const path = await withCommits(1);
    const storage = await openFileStorage(path, { logger: quiet });
    const first = await storage.newOids(1);
    const more = await storage.newOids(200);
    assert.equal(new Set([...first, ...more]).size, 201);
    await storage.close();
    const txs = transactions(path);
    const [one, two] = txs.slice(-2) as [ScannedTransaction, ScannedTransaction];
    assert.equal(one.status, format.TxStatus.oids);
    assert.equal(two.status, format.TxStatus.oids);
    // The last commit loaded may not be durable (its writer may have died before its sync):
    // both point back at it.
    assert.equal(one.meta.group, txs.at(-3)!.offset);
    assert.equal(two.meta.group, txs.at(-3)!.offset);
    zeroRange(path, one.offset, one.offset + one.length);
    const db = await open(path, { logger: quiet });
    try {
      assert.equal(db.storage.lastTid(), txs.at(-3)!.tid);
      assert.equal(db.root.get('m').get('v'), 1);
      assert.deepEqual(tornFiles(path), [`${path}.torn-1`]);
      assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
    } finally {
      await db.close();
    }
  });

  // Found in review: commits of a handle with durability `os` are never synced, and an
  // overwrite of preallocated space may reach the disk in any order; a durable commit after
  // one, whose sync a power loss cuts short, could leave zeros before it. Such commits say
  // so (`nosync`) and do not preallocate, and a durable writer syncs them before its commit.
  it('a durable commit after a commit without sync syncs it first; those do not preallocate', async () => {
    const path = join(dir.path, 'mixed.trove');
    const os = await openFileStorage(path, { durability: 'os', logger: quiet });
    const counting = countingSyncs();
    const full = await openFileStorage(path, { fileOps: counting.ops, logger: quiet });
    try {
      const [a, b] = await full.newOids(2);
      await commit(full, [put(a!, 'durable', 0)]);
      await nextTurn();
      await commit(os, [put(b!, 'not synced', 0)]);
      assert.equal(transactions(path).at(-1)!.meta.nosync, true);
      await nextTurn();
      const before = counting.syncs;
      await commit(full, [put(a!, 'durable again', full.load(a!).tid)]);
      assert.equal(counting.syncs - before, 2, 'the commit without sync, then the durable one');
      const last = transactions(path).at(-1)!;
      assert.equal(last.meta.nosync, undefined);
      assert.equal(last.meta.group, undefined);
    } finally {
      await full.close();
      await os.close();
    }
    const alone = join(dir.path, 'os-alone.trove');
    const db = await open(alone, { durability: 'os', logger: quiet });
    try {
      db.root.set('x', 1);
      await db.commit();
      assert.equal(fs.statSync(alone).size, logEnd(alone));
    } finally {
      await db.close();
    }
  });

  // Commits of a handle with durability `os` or `none` are never synced, so after a power loss
  // any of them may have lost a page while a later one kept all of its own. Each points back
  // at the first commit not yet durable (`group`), so a hole in an earlier one is a torn tail
  // that takes the later ones with it, not damage that keeps the database from opening.
  for (const durability of ['os', 'none'] as const) {
    it(`commits without sync (${durability}): a hole in an earlier one after a power loss is cut off, not refused`, async () => {
      const path = join(dir.path, `nosync-${durability}.trove`);
      const full = await open(path, { logger: quiet });
      full.root.set('m', new PersistentMap([['v', 0]]));
      await full.commit();
      await full.close();
      const db = await open(path, { durability, logger: quiet });
      for (let k = 1; k <= 3; k++) {
        db.root.get('m').set('v', k);
        await db.commit();
      }
      await db.close();
      const txs = commits(path);
      const [durable, first, second, third] = txs.slice(-4) as ScannedTransaction[];
      assert.equal(durable!.meta.nosync, undefined);
      assert.equal(first!.meta.nosync, true);
      // With durability os, the first commit after opening syncs first; with none, it points
      // back at the last commit loaded, whose writer may have died before its sync.
      assert.equal(first!.meta.group, durability === 'os' ? undefined : durable!.offset);
      const runStart = durability === 'os' ? first!.offset : durable!.offset;
      assert.equal(second!.meta.group, runStart);
      assert.equal(third!.meta.group, runStart);
      // A power loss lost a page of the second commit and kept the third.
      zeroRange(path, second!.offset + 8, second!.offset + second!.length - 8);
      const cutOff = fs.readFileSync(path).subarray(second!.offset, third!.offset + third!.length);
      const reopened = await open(path, { logger: quiet });
      try {
        assert.equal(reopened.storage.lastTid(), first!.tid);
        assert.equal(reopened.root.get('m').get('v'), 1);
        assert.deepEqual(tornFiles(path), [`${path}.torn-1`]);
        // Every byte cut off, to the end of the third commit: its length's high bytes are
        // zeros, and still kept.
        assert.equal(cutOff.at(-1), 0);
        assert.deepEqual(fs.readFileSync(`${path}.torn-1`), cutOff);
        assert.deepEqual(await reopened.integrityCheck(), { ok: true, failures: [] });
      } finally {
        await reopened.close();
      }
    });
  }

  // A durable commit syncs what was written without a sync before it, so damage there is
  // damage, whatever follows: the commits without sync after it point back no further.
  it('commits without sync after a durable commit point back only to the first after it', async () => {
    const path = join(dir.path, 'nosync-after-full.trove');
    const os = await openFileStorage(path, { durability: 'os', logger: quiet });
    const full = await openFileStorage(path, { logger: quiet });
    try {
      const [a, b] = await full.newOids(2);
      await commit(os, [put(a!, 'not synced', 0)]);
      await nextTurn();
      await commit(full, [put(b!, 'durable', 0)]);
      await nextTurn();
      await commit(os, [put(a!, 'not synced again', os.load(a!).tid)]);
      await commit(os, [put(a!, 'and again', os.load(a!).tid)]);
    } finally {
      await full.close();
      await os.close();
    }
    const [before, durable, first, second] = commits(path).slice(-4) as ScannedTransaction[];
    assert.equal(before!.meta.nosync, true);
    assert.equal(durable!.meta.nosync, undefined);
    assert.equal(durable!.meta.group, undefined);
    // Not at `before`: the durable commit's writer synced it first. At the durable commit,
    // as its writer may have died before its own sync (see the tests that follow).
    assert.equal(first!.meta.group, durable!.offset);
    assert.equal(second!.meta.group, durable!.offset);
    zeroRange(path, before!.offset + 8, before!.offset + before!.length - 8);
    await assertRefused(path, before!.offset);
  });

  // Found in review of the known limits: a handle that read another handle's durable commit
  // cannot tell whether that writer died between its write and its sync. A commit written
  // after it then could outlive it in a power loss, and the hole was refused as damage.
  it("a durable commit after another handle's durable commit points back at it until it syncs", async () => {
    const path = join(dir.path, 'full-after-foreign.trove');
    const mine = await openFileStorage(path, { logger: quiet });
    const theirs = await openFileStorage(path, { logger: quiet });
    let image: Buffer;
    try {
      const [a, b] = await mine.newOids(2);
      await commit(mine, [put(a!, 'mine', 0)]);
      await nextTurn();
      await commit(theirs, [put(b!, 'x'.repeat(300), 0)]);
      await nextTurn();
      await commit(mine, [put(a!, 'after theirs', mine.load(a!).tid)]);
      // What a power loss during that commit's sync could leave, but for the hole below.
      image = fs.readFileSync(path);
      await commit(mine, [put(a!, 'after my sync', mine.load(a!).tid)]);
      await nextTurn();
      await commit(theirs, [put(b!, 'y'.repeat(300), theirs.load(b!).tid)]);
    } finally {
      await mine.close();
      await theirs.close();
    }
    const [before, foreign, after, synced, back] = commits(path).slice(-5) as ScannedTransaction[];
    // Each handle points back at the other's last commit that it read and did not sync since
    // (and not at that commit's own group: the first commit here was synced by this handle).
    assert.equal(foreign!.meta.group, before!.offset);
    assert.equal(after!.meta.group, foreign!.offset);
    assert.equal(synced!.meta.group, undefined);
    assert.equal(back!.meta.group, synced!.offset);
    // The other writer died before its sync, and the power failed during this one's.
    fs.writeFileSync(path, image!);
    zeroRange(path, foreign!.offset + 64, foreign!.offset + 128);
    const reopened = await openFileStorage(path, { logger: quiet });
    try {
      assert.equal(reopened.lastTid() < foreign!.tid, true);
      assert.deepEqual(tornFiles(path), [`${path}.torn-1`]);
    } finally {
      await reopened.close();
    }
  });

  it('handles taking turns each point back over the last commit of each other handle, no further', async () => {
    for (const count of [2, 3]) {
      const path = join(dir.path, `taking-turns-${count}.trove`);
      const handles: FileStorage[] = [];
      for (let h = 0; h < count; h++) handles.push(await openFileStorage(path, { logger: quiet }));
      const turns = 7;
      try {
        const [a] = await handles[0]!.newOids(1);
        await commit(handles[0]!, [put(a!, 'turn 0', 0)]);
        for (let k = 1; k <= turns; k++) {
          await nextTurn();
          const handle = handles[k % count]!;
          handle.changesSince(0); // reads what the others wrote, as a transaction start does
          await commit(handle, [put(a!, `turn ${k}`, handle.load(a!).tid)]);
        }
      } finally {
        for (const handle of handles) await handle.close();
      }
      // Turn k's handle last wrote (and synced) turn k - count; each other handle wrote one
      // of the turns since, and may have died before its sync.
      const taken = commits(path).slice(-(turns + 1));
      for (let k = 1; k <= turns; k++) {
        const first = Math.max(0, k - count + 1);
        assert.equal(taken[k]!.meta.group, taken[first]!.offset, `${count} handles, turn ${k}`);
      }
    }
  });

  /**
   * Three handles on a new file at `name`, the first with syncs that wait while gates are
   * queued (one a sync, in order): `gate()` queues one and returns how to await its start
   * and release it.
   */
  async function gatedHandles(name: string) {
    const gates: Array<{ started: () => void; release: Promise<void> }> = [];
    const ops: FileOps = {
      ...fileOps.nodeFileOps,
      sync: async (fd, onCallingThread) => {
        const gate = gates.shift();
        if (gate !== undefined) {
          gate.started();
          await gate.release;
        }
        return fileOps.nodeFileOps.sync(fd, onCallingThread);
      },
    };
    const path = join(dir.path, name);
    const mine = await openFileStorage(path, { logger: quiet, fileOps: ops });
    const b = await openFileStorage(path, { logger: quiet });
    const c = await openFileStorage(path, { logger: quiet });
    const gate = () => {
      const started = deferred();
      const release = deferred();
      gates.push({ started: started.resolve, release: release.promise });
      return { started: started.promise, release: release.resolve };
    };
    return { path, mine, b, c, gate };
  }

  /** `handle` reads what the others wrote (as a transaction start does), then commits. */
  async function readAndCommit(handle: FileStorage, oid: number, value: string): Promise<void> {
    handle.changesSince(0);
    let tid = 0;
    try {
      tid = handle.load(oid).tid;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    await commit(handle, [put(oid, value, tid)]);
  }

  // Found in review: a sync during which the handle read something neither clears what it
  // read before the sync nor may take what it read during it as durable.
  it("a checkpoint's sync covers only what was written before it began", async () => {
    for (const secondRead of ['during the first sync', 'after it'] as const) {
      const { path, mine, b, c, gate } = await gatedHandles(`during-${secondRead.length}.trove`);
      try {
        const [x, y, z] = await mine.newOids(3);
        await commit(mine, [put(x!, 'x0', 0)]);
        await nextTurn();
        await readAndCommit(c, z!, 'z0');
        await nextTurn();
        await readAndCommit(mine, x!, 'x1');
        const first = gate();
        const retry = gate();
        const checkpoint = mine.checkpoint();
        await first.started;
        // Written after the checkpoint's sync began, and read while it runs.
        await readAndCommit(b, y!, 'F');
        mine.changesSince(0);
        if (secondRead === 'after it') {
          first.release();
          await retry.started;
        }
        await nextTurn();
        await readAndCommit(c, z!, 'F2');
        mine.changesSince(0);
        if (secondRead !== 'after it') {
          first.release();
          await retry.started;
        }
        await readAndCommit(mine, x!, 'X');
        retry.release();
        await checkpoint;
      } finally {
        for (const handle of [mine, b, c]) await handle.close();
      }
      const [f, , written] = commits(path).slice(-3) as ScannedTransaction[];
      assert.equal(typeof written!.meta.group, 'number', secondRead);
      assert.ok((written!.meta.group as number) <= f!.offset, secondRead);
    }
  });

  // Found in review: what this handle read stays to point back at while a sync of its own
  // makes it durable, if something else was read during that sync.
  it('a commit does not point back before what a sync of its own made durable', async () => {
    const { path, mine, b, c, gate } = await gatedHandles('behind-own-sync.trove');
    try {
      const [x, y, z] = await mine.newOids(3);
      await commit(mine, [put(x!, 'x0', 0)]);
      await nextTurn();
      await readAndCommit(c, z!, 'z0');
      await nextTurn();
      await readAndCommit(mine, x!, 'x1');
      await nextTurn();
      await readAndCommit(b, y!, 'F');
      await nextTurn();
      mine.changesSince(0);
      const first = gate();
      const retry = gate();
      const checkpoint = mine.checkpoint(); // its first sync makes F durable
      await first.started;
      // F2 points back before F: its writer synced last before F was written.
      await readAndCommit(c, z!, 'F2');
      mine.changesSince(0);
      first.release();
      await retry.started;
      await readAndCommit(mine, x!, 'X');
      retry.release();
      await checkpoint;
    } finally {
      for (const handle of [mine, b, c]) await handle.close();
    }
    const [f, f2, written] = commits(path).slice(-3) as ScannedTransaction[];
    assert.ok((f2!.meta.group as number) < f!.offset);
    assert.equal(written!.meta.group, f2!.offset);
  });

  it("an oid reservation or a commit without sync after another handle's durable commit points back at it", async () => {
    for (const durability of ['full', 'os', 'none'] as const) {
      const path = join(dir.path, `reserve-after-foreign-${durability}.trove`);
      const mine = await openFileStorage(path, { durability, logger: quiet });
      const theirs = await openFileStorage(path, { logger: quiet });
      try {
        const [a] = await mine.newOids(1);
        await commit(mine, [put(a!, 'mine', 0)]);
        await nextTurn();
        const [b] = await theirs.newOids(1);
        await commit(theirs, [put(b!, 'theirs', 0)]);
        await nextTurn();
        if (durability === 'full') {
          // More than the 64 oids reserved at first: this handle reserves again.
          await mine.newOids(100);
        } else {
          await commit(mine, [put(a!, 'after theirs', mine.load(a!).tid)]);
        }
      } finally {
        await mine.close();
        await theirs.close();
      }
      const foreign = commits(path).findLast((tx) => tx.meta.nosync === undefined)!;
      const last = transactions(path).at(-1)!;
      assert.equal(last.offset > foreign.offset, true, durability);
      if (durability === 'full') assert.equal(last.status, format.TxStatus.oids);
      else assert.equal(last.meta.nosync, true, durability);
      assert.equal(last.meta.group, foreign.offset, durability);
    }
  });

  it("a checkpoint's sync ends the pointing back at another handle's durable commit", async () => {
    const path = join(dir.path, 'checkpoint-after-foreign.trove');
    const mine = await openFileStorage(path, { durability: 'os', logger: quiet });
    const theirs = await openFileStorage(path, { logger: quiet });
    try {
      const [a, b] = await theirs.newOids(2);
      await commit(theirs, [put(b!, 'theirs', 0)]);
      await nextTurn();
      await commit(mine, [put(a!, 'first', 0)]);
      await mine.checkpoint();
      await commit(mine, [put(a!, 'second', mine.load(a!).tid)]);
    } finally {
      await mine.close();
      await theirs.close();
    }
    const [foreign, first, second] = commits(path).slice(-3) as ScannedTransaction[];
    assert.equal(first!.meta.group, foreign!.offset);
    assert.equal(second!.meta.group, undefined);
  });

  // Pointing back without end would take damage to any commit of a handle that never syncs
  // for a torn tail: with durability `os`, a commit syncs first once 8 MiB were written
  // without a sync, and points back at nothing.
  it('durability os: a commit after 8 MiB written without a sync syncs first, and points back at nothing', async () => {
    const path = join(dir.path, 'os-bounded.trove');
    const counting = countingSyncs();
    const chunk = new Uint8Array(1024 * 1024).fill(7);
    const storage = await openFileStorage(path, {
      durability: 'os',
      fileOps: counting.ops,
      logger: quiet,
    });
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let k = 0; k < 9; k++) tid = await commit(storage, [put(oid!, chunk, tid)]);
      assert.equal(counting.syncs, 1, 'the ninth commit, after 8 MiB');
      tid = await commit(storage, [put(oid!, 'after it', tid)]);
      assert.equal(counting.syncs, 1);
      // The oid reservation, not synced either, is where the first 8 MiB began.
      const reservation = transactions(path)[0]!;
      assert.equal(reservation.status, format.TxStatus.oids);
      const txs = commits(path);
      for (const tx of txs.slice(0, 8)) assert.equal(tx.meta.group, reservation.offset);
      assert.equal(txs[8]!.meta.group, undefined, 'the ninth');
      assert.equal(txs[9]!.meta.group, txs[8]!.offset);
      for (let k = 0; k < 7; k++) tid = await commit(storage, [put(oid!, chunk, tid)]);
      assert.equal(counting.syncs, 1, 'not yet 8 MiB since the ninth');
    } finally {
      await storage.close();
    }
  });

  // Found in review: a handle took where the bytes not yet durable begin from the last
  // transaction it read, and a commit of a handle with durability none that had stopped
  // pointing back (past 8 MiB, without a sync) took an os handle's commits' cover away.
  it('durability os: a commit of a none handle that stops pointing back does not move where the bytes not yet durable begin', async () => {
    const path = join(dir.path, 'none-then-os.trove');
    const counting = countingSyncs();
    const none = await openFileStorage(path, { durability: 'none', logger: quiet });
    const os = await openFileStorage(path, {
      durability: 'os',
      fileOps: counting.ops,
      logger: quiet,
    });
    const chunk = new Uint8Array(1024 * 1024).fill(7);
    try {
      const [a, b] = await none.newOids(2);
      let tid = 0;
      for (let k = 0; k < 9; k++) {
        tid = await commit(none, [put(a!, chunk, tid)]);
        await nextTurn();
        os.lastTid(); // reads the commit
      }
      const txs = commits(path);
      assert.equal(txs[8]!.meta.group, undefined, 'the none handle stopped pointing back');
      await commit(os, [put(b!, 'os', 0)]);
      assert.equal(counting.syncs, 1, 'more than 8 MiB not yet durable: the os commit syncs first');
      assert.equal(commits(path).at(-1)!.meta.group, undefined);
    } finally {
      await os.close();
      await none.close();
    }
  });

  // Found in review: the last commit before an open may never have been synced (its writer
  // died first). A commit with durability os syncs first, as a durable one does, rather than
  // have damage to a durable commit taken for a torn tail.
  it('durability os: the first commit after opening the file syncs first, and points back at nothing', async () => {
    for (const last of ['full', 'os'] as const) {
      const path = join(dir.path, `os-after-open-${last}.trove`);
      const writer = await openFileStorage(path, { durability: last, logger: quiet });
      const [oid] = await writer.newOids(1);
      await commit(writer, [put(oid!, `last commit: ${last}`, 0)]);
      await writer.close();
      const counting = countingSyncs();
      const os = await openFileStorage(path, {
        durability: 'os',
        fileOps: counting.ops,
        logger: quiet,
      });
      try {
        await commit(os, [put(oid!, 'first', os.load(oid!).tid)]);
        assert.equal(counting.syncs, 1, last);
        await commit(os, [put(oid!, 'second', os.load(oid!).tid)]);
        assert.equal(counting.syncs, 1, last);
        const [first, second] = commits(path).slice(-2) as ScannedTransaction[];
        assert.equal(first!.meta.group, undefined, last);
        assert.equal(second!.meta.group, first!.offset, last);
      } finally {
        await os.close();
      }
    }
  });

  // Found in review: an open trusts the log a saved index covers without reading it, and
  // the index is synced; saving it over commits not yet durable would let a power loss leave
  // a hole there that no open looks for.
  it('saving the index syncs the commits not yet durable that it covers first', async () => {
    const path = join(dir.path, 'index-after-os.trove');
    const order: string[] = [];
    const recording = (name: string): FileOps => ({
      ...fileOps.nodeFileOps,
      sync: (fd, onCallingThread) => {
        order.push(`${name} sync, index ${fs.existsSync(`${path}.index`) ? 'saved' : 'not saved'}`);
        return fileOps.nodeFileOps.sync(fd, onCallingThread);
      },
    });
    const os = await openFileStorage(path, {
      durability: 'os',
      fileOps: recording('os'),
      logger: quiet,
    });
    const full = await openFileStorage(path, { fileOps: recording('full'), logger: quiet });
    const [a] = await os.newOids(1);
    await commit(os, [put(a!, 'not synced', 0)]);
    await commit(os, [put(a!, 'not synced either', os.load(a!).tid)]);
    await nextTurn();
    await full.checkpoint(); // it read the commits of the other handle
    assert.deepEqual(order, ['full sync, index not saved']);
    await full.close();
    await commit(os, [put(a!, 'not synced again', os.load(a!).tid)]);
    fs.rmSync(`${path}.index`);
    await os.close();
    assert.deepEqual(order, ['full sync, index not saved', 'os sync, index not saved']);
  });

  // Found in review: a handle that had read a commit whose writer was still in its sync
  // saved the index over it without a sync; and a checkpoint took the writer lock to sync,
  // so a handle that only read waited for a busy writer (BusyError, and close waited).
  it('saving the index syncs what it covers first, without waiting for a writer in its sync', async () => {
    const path = join(dir.path, 'index-over-inflight.trove');
    const held = deferred();
    let writerSyncs = 0;
    const slow: FileOps = {
      ...fileOps.nodeFileOps,
      // The first is the sync owed after opening, before the commit is written.
      sync: async (fd, onCallingThread) => {
        if (++writerSyncs > 1) await held.promise;
        return fileOps.nodeFileOps.sync(fd, onCallingThread);
      },
    };
    const setup = await openFileStorage(path, { logger: quiet });
    const [x] = await setup.newOids(1);
    await commit(setup, [put(x!, 'first', 0)]);
    await setup.close();
    const order: string[] = [];
    const reader = await openFileStorage(path, {
      busyTimeout: 50,
      logger: quiet,
      fileOps: {
        ...fileOps.nodeFileOps,
        sync: (fd, onCallingThread) => {
          order.push(`sync, index of ${savedTid()}`);
          return fileOps.nodeFileOps.sync(fd, onCallingThread);
        },
      },
    });
    const savedTid = () => (fs.existsSync(`${path}.index`) ? 'an earlier tid' : 'none');
    fs.rmSync(`${path}.index`);
    const writer = await openFileStorage(path, { fileOps: slow, logger: quiet });
    try {
      const committing = commit(writer, [put(x!, 'in its sync', writer.load(x!).tid)]);
      // The writer holds the lock, its commit written, its sync held back.
      while (commits(path).length < 2) await nextTurn();
      await nextTurn();
      reader.changesSince(reader.lastTid()); // the reader reads it
      assert.equal(reader.load(x!).data.length, 'in its sync'.length);
      await reader.checkpoint();
      assert.deepEqual(order, ['sync, index of none'], 'synced before the index was saved');
      assert.ok(fs.existsSync(`${path}.index`));
      held.resolve();
      await committing;
    } finally {
      held.resolve();
      await writer.close();
      await reader.close();
    }
  });

  // Found in review: an oid reservation right after opening the file did not point back at the
  // last commit, whose writer may have died before its sync.
  it('an oid reservation right after opening points back at the last commit, so a hole there is torn', async () => {
    const path = join(dir.path, 'reserve-after-open.trove');
    const writer = await openFileStorage(path, { logger: quiet });
    const [x] = await writer.newOids(1);
    await commit(writer, [put(x!, 'x'.repeat(200), 0)]);
    await writer.close();
    const last = commits(path).at(-1)!;
    const handle = await openFileStorage(path, { logger: quiet });
    await handle.newOids(1);
    await handle.close();
    const reservation = transactions(path).at(-1)!;
    assert.equal(reservation.status, format.TxStatus.oids);
    assert.equal(reservation.meta.group, last.offset);
    // A power loss lost a page of the last commit (its writer died before its sync).
    zeroRange(path, last.offset + 64, last.offset + 128);
    const reopened = await openFileStorage(path, { logger: quiet });
    try {
      assert.equal(reopened.lastTid() < last.tid, true);
      assert.deepEqual(tornFiles(path), [`${path}.torn-1`]);
    } finally {
      await reopened.close();
    }
  });

  it('durability none: a commit after 8 MiB written without a sync points back at nothing, without a sync', async () => {
    const path = join(dir.path, 'none-bounded.trove');
    const counting = countingSyncs();
    const storage = await openFileStorage(path, {
      durability: 'none',
      fileOps: counting.ops,
      logger: quiet,
    });
    const chunk = new Uint8Array(1024 * 1024).fill(7);
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let k = 0; k < 10; k++) tid = await commit(storage, [put(oid!, chunk, tid)]);
      assert.equal(counting.syncs, 0);
      const txs = commits(path);
      assert.equal(txs[7]!.meta.group, transactions(path)[0]!.offset);
      assert.equal(txs[8]!.meta.group, undefined, 'the ninth');
      assert.equal(txs[9]!.meta.group, txs[8]!.offset);
    } finally {
      await storage.close();
    }
  });

  // Found in review: a none handle opened on a file that has commits never synced, so it
  // pointed back at the last commit loaded again after every 8 MiB: without bound.
  it('durability none, on a file that has commits: commits point back at most 8 MiB and a group', async () => {
    const path = join(dir.path, 'none-existing.trove');
    const writer = await openFileStorage(path, { logger: quiet });
    const [oid] = await writer.newOids(1);
    let tid = await commit(writer, [put(oid!, 'durable', 0)]);
    await writer.close();
    const storage = await openFileStorage(path, { durability: 'none', logger: quiet });
    const chunk = new Uint8Array(1024 * 1024).fill(7);
    try {
      for (let k = 0; k < 20; k++) tid = await commit(storage, [put(oid!, chunk, tid)]);
    } finally {
      await storage.close();
    }
    const txs = commits(path);
    for (const tx of txs) {
      const back = tx.offset - (tx.meta.group ?? tx.offset);
      assert.ok(back < 9.5 * 1024 * 1024, `${tx.offset} points ${back} bytes back`);
    }
    assert.ok(txs.filter((tx) => tx.meta.group === undefined).length >= 3);
  });

  // Found in review: the check that a checkpoint read nothing during its sync compared the
  // end of the log; a commit cut back after its sync failed, and another of the same length
  // written in its place, left the end as it was.
  it('a checkpoint that read anything during its sync, even at the same end, syncs again before saving', async () => {
    const path = join(dir.path, 'index-same-end.trove');
    let failWriter = false;
    const writerHeld = deferred();
    const writer = await openFileStorage(path, {
      logger: quiet,
      fileOps: {
        ...fileOps.nodeFileOps,
        sync: async (fd, onCallingThread) => {
          if (failWriter) {
            await writerHeld.promise;
            throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
          }
          return fileOps.nodeFileOps.sync(fd, onCallingThread);
        },
      },
    });
    const [x] = await writer.newOids(1);
    const base = await commit(writer, [put(x!, 'first', 0)]);
    let readerHeld: { promise: Promise<void>; resolve: () => void } | undefined;
    let readerSyncs = 0;
    const reader = await openFileStorage(path, {
      logger: quiet,
      fileOps: {
        ...fileOps.nodeFileOps,
        sync: async (fd, onCallingThread) => {
          readerSyncs++;
          await fileOps.nodeFileOps.sync(fd, onCallingThread);
          await readerHeld?.promise;
        },
      },
    });
    try {
      failWriter = true;
      const refused = commit(writer, [put(x!, 'a'.repeat(5000), base)]).catch(
        (error: { code?: string }) => error.code,
      );
      while (commits(path).length < 2) await nextTurn();
      reader.changesSince(reader.lastTid()); // reads the commit that will be refused
      readerHeld = deferred();
      readerSyncs = 0;
      const checkpoint = reader.checkpoint();
      await nextTurn();
      writerHeld.resolve();
      assert.equal(await refused, 'TROVE_IO');
      failWriter = false;
      await commit(writer, [put(x!, 'b'.repeat(5000), base)]); // in the same place
      readerHeld.resolve();
      await checkpoint;
      assert.equal(readerSyncs, 2, 'once more after reading the second commit');
    } finally {
      writerHeld.resolve();
      readerHeld?.resolve();
      await writer.close();
      await reader.close();
    }
  });

  // Found in review: a reservation after a large commit without a sync stopped pointing back
  // (past 8 MiB), where a commit would have synced first.
  it('durability os: a reservation after more than 8 MiB not yet durable still points back', async () => {
    const path = join(dir.path, 'os-reserve-long.trove');
    const storage = await openFileStorage(path, { durability: 'os', logger: quiet });
    try {
      const [oid] = await storage.newOids(1);
      await commit(storage, [put(oid!, new Uint8Array(9 * 1024 * 1024).fill(7), 0)]);
      await storage.newOids(100);
    } finally {
      fs.rmSync(`${path}.index`, { force: true });
      await storage.close();
    }
    const [big, reservation] = transactions(path).slice(-2) as ScannedTransaction[];
    assert.equal(reservation!.status, format.TxStatus.oids);
    assert.equal(reservation!.meta.group, big!.meta.group ?? big!.offset);
    // A power loss lost a page of the large commit and kept the reservation.
    const page = big!.offset + 4 * 1024 * 1024;
    zeroRange(path, page, page + 4096);
    const reopened = await openFileStorage(path, { logger: quiet });
    try {
      assert.ok(reopened.lastTid() < big!.tid);
      assert.deepEqual(tornFiles(path), [`${path}.torn-1`]);
    } finally {
      await reopened.close();
    }
  });

  it('durability os: when the sync before a commit fails, the commit fails and nothing is written', async () => {
    const path = join(dir.path, 'os-sync-fails.trove');
    let failing = true;
    const ops: FileOps = {
      ...fileOps.nodeFileOps,
      sync: (fd, onCallingThread) =>
        failing
          ? Promise.reject(Object.assign(new Error('EIO: i/o error'), { code: 'EIO' }))
          : fileOps.nodeFileOps.sync(fd, onCallingThread),
    };
    const storage = await openFileStorage(path, { durability: 'os', fileOps: ops, logger: quiet });
    const chunk = new Uint8Array(1024 * 1024).fill(7);
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let k = 0; k < 8; k++) tid = await commit(storage, [put(oid!, chunk, tid)]);
      const before = logEnd(path);
      const error = await rejection(() => commit(storage, [put(oid!, 'refused', tid)]));
      assert.ok(error instanceof StorageIOError, String(error));
      assert.equal(error.code, 'TROVE_IO');
      assert.equal(logEnd(path), before);
      assert.equal(storage.lastTid(), tid);
      failing = false;
      tid = await commit(storage, [put(oid!, 'once the disk is well again', tid)]);
      assert.equal(commits(path).at(-1)!.meta.group, undefined);
      assert.equal(Buffer.from(storage.load(oid!).data).toString(), 'once the disk is well again');
    } finally {
      await storage.close();
    }
  });

  // Zeros where a commit's header was (damage), at the end of what a writer has read: the
  // writer would take them for the end of the log and write its commit over that commit and
  // the ones after it. It looks a little further first, and refuses.
  it('a writer that finds zeros where a header was, with data after them, refuses to write', async () => {
    const path = await withCommits(1);
    const writer = await openFileStorage(path, { logger: quiet });
    const other = await openFileStorage(path, { logger: quiet });
    try {
      // The writer has held the lock once (its tail checked), and reads no further.
      const [w] = await writer.newOids(1);
      await commit(writer, [put(w!, 'the writer’s first commit', 0)]);
      const [a, b] = await other.newOids(2);
      await nextTurn();
      await commit(other, [put(a!, 'acknowledged', 0)]);
      await commit(other, [put(b!, 'acknowledged too', 0)]);
      const [first] = transactions(path).slice(-2) as [ScannedTransaction];
      zeroRange(path, first.offset, first.offset + 32);
      const before = fs.readFileSync(path);
      await nextTurn();
      const error = await rejection(() =>
        commit(writer, [put(w!, 'over them?', writer.lastTid())]),
      );
      assert.ok(error instanceof CorruptionError, String(error));
      assert.equal(error.offset, first.offset);
      assert.ok(fs.readFileSync(path).equals(before), 'nothing was written over them');
    } finally {
      await other.close();
      await writer.close();
    }
  });

  // Without the writer lock, a judge may read zeros (or half a transaction) where a writer
  // is writing, then find the commits written after it: the transaction it first read is
  // whole by then, and that is no damage.
  it('a transaction that was being written when it was first read is judged written', async () => {
    const path = await withCommits(3);
    const txs = transactions(path);
    const late = txs.at(-2)!;
    const bytes = fs.readFileSync(path);
    const fd = fs.openSync(path, 'r+');
    try {
      const reader = new logReader.LogReader(fd);
      const size = fs.fstatSync(fd).size;
      fs.writeSync(fd, Buffer.alloc(late.length), 0, late.length, late.offset);
      const problem = reader.readTransaction(late.offset, size);
      assert.ok(!logReader.isTransaction(problem));
      assert.equal(recovery.judge(reader, late.offset, size, problem).kind, 'corrupt');
      // The writer finishes: the same look now finds the transaction whole.
      fs.writeSync(fd, bytes, late.offset, late.length, late.offset);
      assert.deepEqual(recovery.judge(reader, late.offset, size, problem), { kind: 'written' });
    } finally {
      fs.closeSync(fd);
    }
  });

  // Regression (found in review): half a transaction written into preallocated space read
  // as a damaged body, not an incomplete one, so recovery searched its bytes for later
  // transactions (a blob holding a trove file has some) and refused the file as damaged.
  it('half a transaction written into zeros is incomplete: a write in progress, or torn', async () => {
    const path = await withCommits(2);
    const last = transactions(path).at(-1)!;
    const bytes = fs.readFileSync(path);
    const half = Buffer.concat([
      bytes.subarray(0, last.offset + Math.floor(last.length / 2)),
      Buffer.alloc(MAX_STEP),
    ]);
    fs.writeFileSync(path, half);
    const fd = fs.openSync(path, 'r');
    try {
      const read = new logReader.LogReader(fd).readTransaction(last.offset, half.length);
      assert.ok(!logReader.isTransaction(read));
      assert.equal(read.problem, 'incomplete');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('endOfData: the end of the bytes that are not zero, whatever the chunk boundaries', () => {
    const path = join(dir.path, 'zeros.bin');
    const size = 3 * 1024 * 1024 + 17;
    for (const last of [-1, 0, 5, 1024 * 1024 - 1, 1024 * 1024, size - 1]) {
      const bytes = Buffer.alloc(size);
      if (last >= 0) bytes[last] = 7;
      fs.writeFileSync(path, bytes);
      const fd = fs.openSync(path, 'r');
      try {
        assert.equal(recovery.endOfData(fd, 0, size), last + 1, `non-zero byte at ${last}`);
        assert.equal(recovery.endOfData(fd, last + 1, size), last + 1, `from ${last + 1}`);
      } finally {
        fs.closeSync(fd);
      }
    }
  });
});
