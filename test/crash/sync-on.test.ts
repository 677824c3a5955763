import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type FileStorage, type FileStorageOptions, type Oid, open, type Tid } from 'trove';
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
 * File operations that record each sync and what was written before it, and a clock they
 * control. `fakeSync`, while set, runs in place of the real sync: it takes as long as it
 * moves the clock on (`clock.ms`), so the tests decide what is quick and what is slow.
 */
class SyncRecorder {
  readonly calls: SyncCall[] = [];
  #from = Number.POSITIVE_INFINITY;
  #to = 0;
  /** The time (ms) the storage reads through `options.clock`. */
  readonly clock = { ms: 0 };
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

  /** Syncs that take `ms` on the clock (under 1: quick; 1 or more: slow). */
  syncsTaking(ms: number): void {
    this.fakeSync = async () => {
      this.clock.ms += ms;
    };
  }

  /** Opens a durable FileStorage on these operations and this clock. */
  open(path: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    return openFileStorage(path, {
      durability: 'full',
      fileOps: this.ops,
      clock: () => this.clock.ms,
      ...options,
    } as FileStorageOptions);
  }

  /** Where the syncs asked for after the first `skip` ran: C calling thread, P threadpool. */
  since(skip: number): string {
    return this.calls
      .slice(skip)
      .map((call) => (call.onCallingThread ? 'C' : 'P'))
      .join('');
  }
}

/** Commits `count` changes of `oid` one after the other, from `tid`; returns the last tid. */
async function commitMany(storage: FileStorage, oid: Oid, tid: Tid, count: number): Promise<Tid> {
  let last = tid;
  for (let i = 0; i < count; i++) last = await commit(storage, [put(oid, `change ${i}`, last)]);
  return last;
}

/** Lets the event loop have a turn. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("where a durable commit's sync runs (syncOn)", () => {
  const dir = tempDir('trove-sync-on-');
  after(() => dir.remove());

  it('a lone writer syncs on the calling thread once 8 syncs in a row were quick, and each commit is in the file before it is answered', async () => {
    const path = join(dir.path, 'lone.trove');
    const recorder = new SyncRecorder();
    recorder.syncsTaking(0);
    const storage = await recorder.open(path);
    try {
      const [oid] = await storage.newOids(1);
      let tid = 0;
      for (let i = 0; i < 12; i++) {
        tid = await commit(storage, [put(oid!, `commit ${i}`, tid)]);
        const last = recorder.calls.at(-1)!;
        const written = commits(path).find((tx) => tx.tid === tid);
        assert.ok(written !== undefined, `commit ${tid} is in the file`);
        assert.ok(written.offset >= last.from && written.offset + written.length <= last.to);
      }
      // The first commit after the reservation syncs it first: 13 syncs.
      assert.equal(recorder.since(0), 'PPPPPPPPCCCCC');
      // Two at once: the first one's sync has the second waiting behind it.
      const [other] = await storage.newOids(1);
      await turn();
      const skip = recorder.calls.length;
      await Promise.all([
        commit(storage, [put(oid!, 'first of two', tid)]),
        commit(storage, [put(other!, 'second of two')]),
      ]);
      assert.equal(recorder.since(skip), 'PC');
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
    recorder.syncsTaking(0);
    const storage = await recorder.open(join(dir.path, 'slow.trove'));
    try {
      const [oid] = await storage.newOids(1);
      let tid = await commitMany(storage, oid!, 0, 12);
      // The disk gets busy: this sync on the calling thread takes 5 ms.
      recorder.syncsTaking(5);
      const skip = recorder.calls.length;
      tid = await commitMany(storage, oid!, tid, 1);
      const slowEnd = recorder.clock.ms;
      recorder.syncsTaking(0);
      tid = await commitMany(storage, oid!, tid, 10);
      recorder.clock.ms = slowEnd + 49.9;
      await turn();
      tid = await commitMany(storage, oid!, tid, 1);
      recorder.clock.ms = slowEnd + 50;
      await turn();
      await commitMany(storage, oid!, tid, 2);
      assert.equal(recorder.since(skip), `C${'P'.repeat(11)}CC`);
    } finally {
      await storage.close();
    }
  });

  it('a slow sync on the threadpool starts the count of quick syncs again, with no wait', async () => {
    const recorder = new SyncRecorder();
    recorder.syncsTaking(0);
    const storage = await recorder.open(join(dir.path, 'slow-pool.trove'));
    try {
      const [oid, big] = await storage.newOids(2);
      const tid = await commitMany(storage, oid!, 0, 12);
      // A large commit syncs on the threadpool; this sync takes 5 ms.
      recorder.syncsTaking(5);
      const skip = recorder.calls.length;
      await commit(storage, [put(big!, 'x'.repeat(100_000))]);
      recorder.syncsTaking(0);
      await turn();
      await commitMany(storage, oid!, tid, 10);
      assert.equal(recorder.since(skip), `P${'P'.repeat(8)}CC`);
    } finally {
      await storage.close();
    }
  });

  it('syncs on the calling thread leave the event loop a turn at least every 2 ms', async () => {
    // Commits that begin in the check phase (after setImmediate), or in the poll phase (in
    // an I/O callback), where a single immediate would still run before this round's timers.
    for (const from of ['check', 'poll'] as const) {
      const recorder = new SyncRecorder();
      recorder.syncsTaking(0);
      const path = join(dir.path, `turns-${from}.trove`);
      const storage = await recorder.open(path);
      try {
        const [oid] = await storage.newOids(1);
        const tid = await commitMany(storage, oid!, 0, 10);
        await turn();
        // Each sync takes 0.5 ms (quick): back to back, with no turn of the event loop
        // between them, four fit in 2 ms; then the loop goes round once before the fifth,
        // which syncs on the calling thread again (the threadpool would cost two hops).
        recorder.syncsTaking(0.5);
        if (from === 'poll') await new Promise<void>((resolve) => fs.stat(path, () => resolve()));
        const skip = recorder.calls.length;
        // A timer that is due when the commits start fires once the loop goes round.
        let atTimer: number | undefined;
        setTimeout(() => {
          atTimer = recorder.calls.length - skip;
        }, 0);
        for (const start = performance.now(); performance.now() - start < 3; );
        await commitMany(storage, oid!, tid, 9);
        assert.equal(recorder.since(skip), 'CCCCCCCCC', from);
        assert.equal(atTimer, 4, from);
      } finally {
        await storage.close();
      }
    }
  });

  it('commits that never wait (no sync) leave the event loop a turn at least every 10 ms', async () => {
    for (const durability of ['none', 'os'] as const) {
      const recorder = new SyncRecorder();
      const storage = await recorder.open(join(dir.path, `unsynced-${durability}.trove`), {
        durability,
      });
      try {
        const [oid] = await storage.newOids(1);
        await turn();
        let done = 0;
        let atTimer: number | undefined;
        setTimeout(() => {
          atTimer = done;
        }, 0);
        for (const start = performance.now(); performance.now() - start < 3; );
        let tid: Tid = 0;
        // Each commit takes 1 ms by the storage's clock; none waits for anything.
        for (; done < 30; done++) {
          tid = await commit(storage, [put(oid!, `change ${done}`, tid)]);
          recorder.clock.ms += 1;
        }
        assert.equal(atTimer, 10, durability);
      } finally {
        await storage.close();
      }
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
    recorder.syncsTaking(0);
    const storage = await recorder.open(path);
    try {
      const [oid] = await storage.newOids(1);
      const tid = await commitMany(storage, oid!, 0, 10);
      const committed = commits(path).length;
      let failedOnCallingThread: boolean | undefined;
      recorder.fakeSync = async (onCallingThread) => {
        recorder.syncsTaking(0);
        failedOnCallingThread = onCallingThread;
        throw Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
      };
      const error = await commit(storage, [put(oid!, 'lost', tid)]).then(
        () => assert.fail('the commit must fail'),
        (e: unknown) => e as { code?: string },
      );
      assert.equal(failedOnCallingThread, true, 'the failing sync ran on the calling thread');
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
