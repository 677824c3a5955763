import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { open } from 'trove';
import { commit, put } from '../storage/storage-assertions.js';
import { commits, deferred, type FileOps, fileOps, openFileStorage, tempDir } from './support.js';

const real = fileOps.nodeFileOps;

/** One sync the storage asked for. */
interface SyncCall {
  /** Whether the storage asked for it on the calling thread. */
  readonly onCallingThread: boolean;
  /** The bytes written since the sync before it: [from, to). */
  readonly from: number;
  readonly to: number;
}

/**
 * File operations that record each sync and what was written before it. `syncDelay` runs in
 * place of the real sync when set (a slow disk, or none at all).
 */
class SyncRecorder {
  readonly calls: SyncCall[] = [];
  #from = Number.POSITIVE_INFINITY;
  #to = 0;
  /** Replaces the real sync, for the next syncs, while set. */
  fakeSync: ((onCallingThread: boolean) => Promise<void>) | undefined;

  readonly ops: FileOps = {
    write: async (fd, buffer, position) => {
      await real.write(fd, buffer, position);
      this.#from = Math.min(this.#from, position);
      this.#to = Math.max(this.#to, position + buffer.byteLength);
    },
    sync: async (fd, onCallingThread) => {
      this.calls.push({
        onCallingThread: onCallingThread === true,
        from: this.#from,
        to: this.#to,
      });
      this.#from = Number.POSITIVE_INFINITY;
      this.#to = 0;
      if (this.fakeSync !== undefined) return this.fakeSync(onCallingThread === true);
      return real.sync(fd, onCallingThread);
    },
    truncate: (fd, length) => real.truncate(fd, length),
  };

  /** The syncs asked for after the first `skip`. */
  since(skip: number): SyncCall[] {
    return this.calls.slice(skip);
  }
}

/** Spins for `ms` milliseconds: a sync on the calling thread that a slow disk makes slow. */
function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // The point is to take the time on this thread, as a blocking sync would.
  }
}

describe("where a durable commit's sync runs (syncOn)", () => {
  const dir = tempDir('trove-sync-on-');
  after(() => dir.remove());

  it('a lone writer syncs on the calling thread once 8 syncs in a row were quick, and each commit is in the file before it is answered', async () => {
    const path = join(dir.path, 'lone.trove');
    const recorder = new SyncRecorder();
    // Syncs that take no time: how long real ones take depends on the machine's load, and a
    // slow one rightly keeps the next ones on the threadpool (tested below).
    recorder.fakeSync = async () => {};
    const storage = await openFileStorage(path, { durability: 'full', fileOps: recorder.ops });
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let i = 0; i < 20; i++) {
        tid = await commit(storage, [put(oid!, `commit ${i}`, tid)]);
        const last = recorder.calls.at(-1)!;
        const written = commits(path).find((tx) => tx.tid === tid);
        assert.ok(written !== undefined, `commit ${tid} is in the file`);
        assert.ok(written.offset >= last.from && written.offset + written.length <= last.to);
      }
      const calls = recorder.calls;
      // The first commit after the reservation syncs it first: 21 syncs.
      assert.equal(calls.length, 21);
      assert.deepEqual(
        calls.slice(0, 8).map((call) => call.onCallingThread),
        Array(8).fill(false),
        'the first 8 on the threadpool',
      );
      // A pause of the process (a garbage collection) may make one slow and start the count
      // again; most of the rest run on the calling thread.
      assert.ok(calls.slice(8).filter((call) => call.onCallingThread).length >= 6);
    } finally {
      await storage.close();
    }
  });

  it("syncOn 'threadpool' never syncs on the calling thread", async () => {
    const recorder = new SyncRecorder();
    const storage = await openFileStorage(join(dir.path, 'pool.trove'), {
      durability: 'full',
      syncOn: 'threadpool',
      fileOps: recorder.ops,
    });
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let i = 0; i < 5; i++) tid = await commit(storage, [put(oid!, `commit ${i}`, tid)]);
      assert.ok(recorder.calls.length >= 5);
      assert.ok(recorder.calls.every((call) => !call.onCallingThread));
    } finally {
      await storage.close();
    }
  });

  it('a sync covering several commits, a large commit, or one with others waiting runs on the threadpool', async () => {
    const path = join(dir.path, 'groups.trove');
    const recorder = new SyncRecorder();
    const storage = await openFileStorage(path, { durability: 'full', fileOps: recorder.ops });
    try {
      const oids = await storage.newOids(8);
      // Concurrent writers: commits queue behind the one being synced.
      await Promise.all(
        oids.map(async (oid, w) => {
          let tid = 0;
          for (let i = 0; i < 6; i++) tid = await commit(storage, [put(oid, `w${w} c${i}`, tid)]);
        }),
      );
      // A large commit after a lone one.
      const [big] = await storage.newOids(1);
      await commit(storage, [put(big!, 'small')]);
      const before = recorder.calls.length;
      await commit(storage, [put(big!, 'x'.repeat(100_000), storage.lastTid())]);
      assert.equal(recorder.calls[before]!.onCallingThread, false, 'a large commit');
    } finally {
      await storage.close();
    }
    const written = commits(path);
    for (const call of recorder.calls.filter((c) => c.onCallingThread)) {
      const covered = written.filter(
        (tx) => tx.offset >= call.from && tx.offset + tx.length <= call.to,
      );
      assert.equal(covered.length, 1, 'a sync on the calling thread covers one commit');
    }
    assert.ok(recorder.calls.some((call) => !call.onCallingThread));
  });

  it('after a slow sync on the calling thread, syncs stay on the threadpool for ten times as long, then come back', async () => {
    const recorder = new SyncRecorder();
    recorder.fakeSync = async () => {};
    const storage = await openFileStorage(join(dir.path, 'slow.trove'), {
      durability: 'full',
      fileOps: recorder.ops,
    });
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let i = 0; i < 12; i++) tid = await commit(storage, [put(oid!, `quick ${i}`, tid)]);
      // The disk gets busy: this sync on the calling thread takes 50 ms (or more, if the
      // machine is loaded); the next half second at least goes to the threadpool.
      recorder.fakeSync = async (onCallingThread) => {
        recorder.fakeSync = async () => {};
        assert.equal(onCallingThread, true, 'the slow one ran on the calling thread');
        busyWait(50);
      };
      tid = await commit(storage, [put(oid!, 'slow', tid)]);
      let skip = recorder.calls.length;
      for (let i = 0; i < 12; i++) tid = await commit(storage, [put(oid!, `after ${i}`, tid)]);
      assert.deepEqual(
        recorder.since(skip).map((call) => call.onCallingThread),
        Array(12).fill(false),
        'quick syncs, but soon after the slow one',
      );
      // Back on the calling thread once the time is up (waiting for it, up to 10 s).
      skip = recorder.calls.length;
      const giveUp = performance.now() + 10_000;
      while (!recorder.since(skip).some((call) => call.onCallingThread)) {
        assert.ok(performance.now() < giveUp, 'back on the calling thread within 10 s');
        await new Promise((resolve) => setTimeout(resolve, 50));
        tid = await commit(storage, [put(oid!, 'later', tid)]);
      }
    } finally {
      await storage.close();
    }
  });

  it('a slow sync on the threadpool starts the count of quick syncs again', async () => {
    const recorder = new SyncRecorder();
    recorder.fakeSync = async () => {};
    const storage = await openFileStorage(join(dir.path, 'slow-pool.trove'), {
      durability: 'full',
      fileOps: recorder.ops,
    });
    try {
      const [oid, big] = await storage.newOids(2);
      let tid = 0;
      for (let i = 0; i < 12; i++) tid = await commit(storage, [put(oid!, `quick ${i}`, tid)]);
      assert.equal(recorder.calls.at(-1)!.onCallingThread, true);
      // A large commit syncs on the threadpool; this one takes 5 ms.
      recorder.fakeSync = async (onCallingThread) => {
        recorder.fakeSync = async () => {};
        assert.equal(onCallingThread, false, 'a large commit syncs on the threadpool');
        await new Promise((resolve) => setTimeout(resolve, 5));
      };
      await commit(storage, [put(big!, 'x'.repeat(100_000))]);
      const skip = recorder.calls.length;
      for (let i = 0; i < 12; i++) tid = await commit(storage, [put(oid!, `after ${i}`, tid)]);
      const after = recorder.since(skip).map((call) => call.onCallingThread);
      assert.deepEqual(after.slice(0, 8), Array(8).fill(false), '8 quick ones first');
      assert.ok(after.slice(8).some(Boolean));
    } finally {
      await storage.close();
    }
  });

  it('after a group of several, commits made in the same turn of the event loop join one group', async () => {
    const recorder = new SyncRecorder();
    const storage = await openFileStorage(join(dir.path, 'join.trove'), {
      durability: 'full',
      fileOps: recorder.ops,
    });
    try {
      const [a, b, c, d, e] = await storage.newOids(5);
      // Hold the first sync until two more commits queue, so they form a group of two.
      const gate = deferred();
      recorder.fakeSync = async () => {
        recorder.fakeSync = undefined;
        await gate.promise;
      };
      const first = commit(storage, [put(a!, 'a')]);
      await new Promise((resolve) => setImmediate(resolve));
      const pair = Promise.all([commit(storage, [put(b!, 'b')]), commit(storage, [put(c!, 'c')])]);
      gate.resolve();
      await Promise.all([first, pair]);

      const skip = recorder.calls.length;
      const one = commit(storage, [put(d!, 'd')]);
      await Promise.resolve();
      const two = commit(storage, [put(e!, 'e')]);
      await Promise.all([one, two]);
      assert.equal(recorder.since(skip).length, 1, 'one sync for both');
    } finally {
      await storage.close();
    }
  });

  it('a sync on the calling thread that fails fails its commit, which leaves nothing behind', async () => {
    const path = join(dir.path, 'fails.trove');
    const recorder = new SyncRecorder();
    const storage = await openFileStorage(path, { durability: 'full', fileOps: recorder.ops });
    try {
      const [oid] = await storage.newOids(1);
      const tid = await commit(storage, [put(oid!, 'kept')]);
      const committed = commits(path).length;
      recorder.fakeSync = async (onCallingThread) => {
        recorder.fakeSync = undefined;
        assert.equal(onCallingThread, true, 'asked on the calling thread');
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      };
      const error = await commit(storage, [put(oid!, 'lost', tid)]).then(
        () => assert.fail('the commit must fail'),
        (e: unknown) => e as { code?: string },
      );
      assert.equal(error.code, 'TROVE_IO');
      assert.equal(commits(path).length, committed, 'nothing of it in the file');
      assert.equal(storage.lastTid(), tid);
      // The handle goes on.
      const next = await commit(storage, [put(oid!, 'next', tid)]);
      assert.ok(next > tid);
    } finally {
      await storage.close();
    }
  });

  it('the real sync asked on the calling thread returns a settled promise, rejected on failure', async () => {
    await assert.rejects(real.sync(0x3fff_ffff, true), { code: 'EBADF' });
    await assert.rejects(real.sync(0x3fff_ffff), { code: 'EBADF' });
  });

  it('a syncOn that is not auto or threadpool is an InvalidArgumentError', async () => {
    for (const syncOn of ['always', '', 1, null]) {
      await assert.rejects(open(join(dir.path, 'bad.trove'), { syncOn: syncOn as never }), {
        code: 'TROVE_INVALID_ARGUMENT',
        argument: 'options.syncOn',
      });
    }
  });
});
