/**
 * Regression tests: an error raised while cleaning up after a failure (removing a partial
 * copy, undoing a pack's marker, resyncing the default connection, releasing a blob source,
 * stopping a progress bar) must never replace the outcome it cleans up after, nor leave
 * anything behind that breaks what comes next.
 *
 * The faults are injected by replacing functions of node:fs (restored after each test), or
 * through FileStorage's fileOps seam. Removals refused with EROFS stand for a file system
 * remounted read-only, which a test cannot make for real. Descriptors are told apart by
 * their paths (/proc/self/fd, as support.ts's tempDir assumes).
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  Blob,
  type Database,
  MemoryStorage,
  open,
  Persistent,
  PersistentMap,
  registerClass,
  StorageIOError,
} from 'trove';
import {
  closeQuietly,
  deferred,
  type FileOps,
  fileOps,
  openFileStorage,
  quiet,
  rejection,
  tempDir,
} from './support.js';

const real = fileOps.nodeFileOps;
const nodeFs = createRequire(import.meta.url)('node:fs') as typeof fs;

type AnyFunction = (...args: any[]) => any;

/** A system error like the ones Node's fs raises. */
function systemError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected failure, ${syscall}`), { code, syscall });
}

/** The path of an open descriptor ('' if it has none). */
function pathOf(fd: number): string {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}

function assertIOError(error: unknown, systemCode: string): void {
  assert.ok(error instanceof StorageIOError, `a StorageIOError, got ${String(error)}`);
  assert.equal(error.code, 'TROVE_IO');
  assert.equal(error.systemCode, systemCode);
}

function assertConflict(error: unknown): void {
  assert.ok(error instanceof Error, `an error, got ${String(error)}`);
  assert.equal((error as { code?: unknown }).code, 'TROVE_CONFLICT');
}

/**
 * Runs `body` with functions of node:fs replaced (each `make` is given the original), for
 * the package's ESM imports too; restores them after, whatever happens.
 */
async function withFs<T>(
  patches: Record<string, (original: AnyFunction) => AnyFunction>,
  body: () => Promise<T>,
): Promise<T> {
  const target = nodeFs as unknown as Record<string, AnyFunction>;
  const saved = new Map<string, AnyFunction>();
  try {
    for (const [name, make] of Object.entries(patches)) {
      saved.set(name, target[name]!);
      target[name] = make(target[name]!);
    }
    syncBuiltinESMExports();
    return await body();
  } finally {
    for (const [name, original] of saved) target[name] = original;
    syncBuiltinESMExports();
  }
}

/** A readSync that fails (EIO) once `fault.armed` is set, once; `fault.hits` counts it. */
const readSyncFailingOnce =
  (fault: { armed: boolean; hits: number }) =>
  (readSync: AnyFunction) =>
  (...args: unknown[]) => {
    if (!fault.armed) return readSync(...args);
    fault.armed = false;
    fault.hits++;
    throw systemError('EIO', 'read');
  };

/**
 * File operations whose syncs, once `commit` runs through `failingResync`, make the next read
 * of a file fail (EIO), once: after a durable commit, that is its connection's resync.
 */
function readFailingAfterSync() {
  const fault = { arming: false, armed: false, hits: 0 };
  const ops: FileOps = {
    write: (fd, buffer, position) => real.write(fd, buffer, position),
    truncate: (fd, length) => real.truncate(fd, length),
    sync: async (fd, onCallingThread) => {
      await real.sync(fd, onCallingThread);
      if (fault.arming) [fault.arming, fault.armed] = [false, true];
    },
  };
  const failingResync = <T>(commit: () => Promise<T>): Promise<T> =>
    withFs(
      {
        readSync: readSyncFailingOnce(fault),
      },
      () => {
        fault.arming = true;
        return commit();
      },
    );
  return { ops, fault, failingResync };
}

/** Runs `check` on the database at `path` opened read-only, and closes it. */
async function reopened(path: string, check: (db: Database) => Promise<void>): Promise<void> {
  const db = await open(path, { readOnly: true, logger: quiet });
  try {
    await check(db);
  } finally {
    await db.close();
  }
}

/** Opens the database at `path` and closes it: what a rejected open would have left open. */
async function openAndClose(path: string, options: { durability?: 'none' } = {}) {
  const db = await open(path, { ...options, logger: quiet });
  await db.close();
}

describe('an error in the cleanup after a failure never replaces the failure', () => {
  const dir = tempDir('trove-cleanup-');
  let files = 0;
  after(() => dir.remove());
  const newPath = (name: string) => join(dir.path, `${name}-${++files}.trove`);

  // (recovery's copyTornTail).
  it('open: the copy of a torn tail fails (ENOSPC), removing it fails too: ENOSPC, nothing cut', async () => {
    const path = newPath('torn');
    const db = await open(path, { durability: 'none', logger: quiet });
    try {
      db.root.set('a', 'x'.repeat(5000));
      await db.commit();
      db.root.set('b', 'y'.repeat(5000));
      await db.commit();
    } finally {
      await db.close();
    }
    const size = fs.statSync(path).size - 100;
    fs.truncateSync(path, size); // the last transaction torn
    const hits = { writes: 0, removals: 0 };
    const error = await withFs(
      {
        writeSync:
          (writeSync) =>
          (fd: number, buffer: Uint8Array, offset = 0, length = buffer.byteLength, position) => {
            if (!pathOf(fd).includes('.torn-')) {
              return writeSync(fd, buffer, offset, length, position);
            }
            // A disk nearly full: half the bytes, then none.
            hits.writes++;
            writeSync(fd, buffer, offset, Math.ceil(length / 2), position);
            throw systemError('ENOSPC', 'write');
          },
        rmSync: (rmSync) => (target: fs.PathLike, options?: fs.RmOptions) => {
          if (!String(target).includes('.torn-')) return rmSync(target, options);
          hits.removals++;
          throw systemError('EROFS', 'rm');
        },
      },
      () => rejection(() => openAndClose(path, { durability: 'none' })),
    );
    assert.ok(hits.writes > 0 && hits.removals > 0, 'both faults were hit');
    assertIOError(error, 'ENOSPC');
    assert.equal(fs.statSync(path).size, size, 'the data file was not cut');

    // Space is back: an open copies the torn tail aside and goes on.
    const again = await open(path, { durability: 'none', logger: quiet });
    try {
      assert.equal(again.root.get('a'), 'x'.repeat(5000));
    } finally {
      await again.close();
    }
  });

  // (log-writer's syncPublished: the copy is named, the directory sync fails, and removing
  // the named copy fails too).
  for (const kind of ['file', 'memory'] as const) {
    const openKind = (): Promise<Database> =>
      kind === 'file'
        ? open(newPath('backed-up'), { logger: quiet })
        : open({ storage: new MemoryStorage() });

    it(`backup (${kind} storage): the directory sync fails (EIO), removing the copy fails too: EIO`, async () => {
      const db = await openKind();
      try {
        db.root.set('k', 'v');
        await db.commit();
        const target = newPath(`copy-a-${kind}`);
        const hits = { syncs: 0, removals: 0 };
        const error = await withFs(
          {
            fsyncSync: (fsyncSync) => (fd: number) => {
              if (!fs.fstatSync(fd).isDirectory()) return fsyncSync(fd);
              hits.syncs++;
              throw systemError('EIO', 'fsync');
            },
            rmSync: (rmSync) => (path: fs.PathLike, options?: fs.RmOptions) => {
              if (String(path) !== target) return rmSync(path, options);
              hits.removals++;
              throw systemError('EROFS', 'rm');
            },
          },
          () => rejection(() => db.backup(target)),
        );
        assert.ok(hits.syncs > 0 && hits.removals > 0, 'both faults were hit');
        assertIOError(error, 'EIO');
      } finally {
        await closeQuietly(db);
      }
    });

    // (log-writer's publish: the link succeeded, removing the temporary name fails).
    it(`backup (${kind} storage): removing the temporary name after the link fails: the backup is done`, async () => {
      const db = await openKind();
      try {
        db.root.set('k', 'v');
        await db.commit();
        const target = newPath(`copy-b-${kind}`);
        let removals = 0;
        await withFs(
          {
            rmSync: (rmSync) => (path: fs.PathLike, options?: fs.RmOptions) => {
              if (!String(path).startsWith(`${target}.backup-`)) return rmSync(path, options);
              removals++;
              throw systemError('EROFS', 'rm');
            },
          },
          () => db.backup(target),
        );
        assert.ok(removals > 0, 'the fault was hit');
        await reopened(target, async (copy) => {
          assert.equal(copy.root.get('k'), 'v');
          assert.deepEqual(await copy.integrityCheck(), { ok: true, failures: [] });
        });
        // Nothing of the backup stays in the way of the next.
        const second = newPath(`copy-b2-${kind}`);
        await db.backup(second);
        await reopened(second, async (copy2) => {
          assert.equal(copy2.root.get('k'), 'v');
        });
      } finally {
        await closeQuietly(db);
      }
    });
  }

  // (Storage.commit: removing the staged blob file after the commit).
  it('a commit storing a blob whose staged file cannot be removed afterwards resolves; later commits work', async () => {
    const path = newPath('blob');
    const db = await open(path, { logger: quiet });
    const rm = nodeFs.promises.rm;
    let removals = 0;
    try {
      nodeFs.promises.rm = (target: fs.PathLike, options?: fs.RmOptions) => {
        if (!String(target).includes('.blob-')) return rm(target, options);
        removals++;
        return Promise.reject(systemError('EROFS', 'rm'));
      };
      try {
        await db.transaction((tx) => {
          tx.root.set('photo', Blob.from(Buffer.from('hello blob')));
        });
      } finally {
        nodeFs.promises.rm = rm;
      }
      assert.ok(removals > 0, 'the fault was hit');
      const bytes = await db.read(async (tx) => Buffer.from(await tx.root.get('photo').bytes()));
      assert.equal(bytes.toString(), 'hello blob');
      // New objects get new oids (none of the stored blob's handed out again).
      for (const name of ['m0', 'm1']) {
        await db.transaction((tx) => {
          tx.root.set(name, new PersistentMap([['name', name]]));
        });
      }
      await db.close();
      await reopened(path, async (again) => {
        assert.equal(Buffer.from(await again.root.get('photo').bytes()).toString(), 'hello blob');
        assert.equal(again.root.get('m0').get('name'), 'm0');
        assert.equal(again.root.get('m1').get('name'), 'm1');
        assert.deepEqual(await again.integrityCheck(), { ok: true, failures: [] });
      });
    } finally {
      nodeFs.promises.rm = rm;
      await closeQuietly(db);
    }
  });

  // Found in review: one new Blob set in two transactions at once is staged by both; the
  // second copy is discarded, and the failure of that removal replaced the commit's outcome.
  it('a redundant staged copy that cannot be removed does not change the outcome of its commit', async () => {
    const outcomes: string[][] = [];
    for (const refuse of [false, true]) {
      const db = await open(newPath('shared-blob'), { logger: quiet });
      const rm = nodeFs.promises.rm;
      try {
        nodeFs.promises.rm = (target: fs.PathLike, options?: fs.RmOptions) =>
          refuse && String(target).includes('.blob-')
            ? Promise.reject(systemError('EROFS', 'rm'))
            : rm(target, options);
        const blob = Blob.from(Buffer.from('shared content'));
        const results = await Promise.allSettled([
          db.transaction((tx) => {
            tx.root.set('a', blob);
          }),
          db.transaction((tx) => {
            tx.root.set('b', blob);
          }),
        ]);
        outcomes.push(
          results.map((result) =>
            result.status === 'fulfilled' ? 'stored' : String(result.reason.code),
          ),
        );
      } finally {
        nodeFs.promises.rm = rm;
        await db.close();
      }
    }
    // Which of the two stores it is up to timing; the other is refused, the same way both
    // times.
    assert.equal(outcomes[0]!.filter((outcome) => outcome === 'stored').length, 1);
    assert.deepEqual(
      outcomes[1]!.toSorted(),
      outcomes[0]!.toSorted(),
      'the same outcomes with the removal refused',
    );
  });

  // (FileStorage's discardBlob: the staged file cannot be removed).
  it('discardBlob whose staged file cannot be removed rejects with StorageIOError', async () => {
    const storage = await openFileStorage(newPath('discard'), { logger: quiet });
    const rm = nodeFs.promises.rm;
    try {
      const staged = await storage.stageBlob(Buffer.from('never committed'));
      nodeFs.promises.rm = (target: fs.PathLike, options?: fs.RmOptions) =>
        String(target).includes('.blob-')
          ? Promise.reject(systemError('EROFS', 'rm'))
          : rm(target, options);
      assertIOError(await rejection(() => storage.discardBlob(staged)), 'EROFS');
    } finally {
      nodeFs.promises.rm = rm;
      await storage.close();
    }
  });

  // (Database.commit: abort() + sync() after a ConflictError).
  it('db.commit: the resync after a conflict fails once (EIO): ConflictError, and for the commit waiting behind it too', async () => {
    const fault = { armed: false, hits: 0 };
    class Cell extends Persistent {
      value = 0;
      static resolveConflict(): never {
        fault.armed = true; // the next read of the file fails, once
        throw new Error('cannot merge');
      }
    }
    registerClass(Cell, 'cleanupFaults.Cell');
    const path = newPath('conflict');
    const db = await open(path, { logger: quiet });
    try {
      db.root.set('cell', new Cell());
      await db.commit();
      const cell = db.root.get('cell') as Cell;
      void cell.value;
      // Another transaction changes the cell: the default connection's next commit conflicts.
      await db.transaction((tx) => {
        tx.root.get('cell').value = 100;
      });
      const [first, second] = await withFs(
        {
          readSync: readSyncFailingOnce(fault),
        },
        async () => {
          cell.value = 1;
          const first = db.commit(); // collects the change to the cell now
          db.root.set('other', 'set while the first commit ran');
          const second = db.commit(); // waits for the first
          return Promise.allSettled([first, second]);
        },
      );
      assert.equal(fault.hits, 1, 'the read error was hit');
      assert.equal(first.status, 'rejected');
      assertConflict(first.reason);
      // Documented: the changes it was to store were discarded by the first one's conflict.
      assert.equal(second.status, 'rejected', 'the second commit rejects');
      assertConflict((second as PromiseRejectedResult).reason);
      await db.close();
      await reopened(path, async (again) => {
        assert.equal(again.root.get('other'), undefined);
        assert.equal(again.root.get('cell').value, 100);
      });
    } finally {
      await closeQuietly(db);
    }
  });

  // (Database.commit: sync() after a commit that succeeded).
  it('db.commit: the resync after a successful commit fails once (EIO): the commit resolves with its tid', async () => {
    const { ops, fault, failingResync } = readFailingAfterSync();
    const path = newPath('resync');
    const storage = await openFileStorage(path, { fileOps: ops, logger: quiet });
    const db = await open({ storage });
    try {
      db.root.set('warm-up', new PersistentMap());
      await db.commit();
      const before = db.storage.lastTid();
      db.root.set('k', 'committed');
      const tid = await failingResync(() => db.commit());
      assert.equal(fault.hits, 1, 'the read error was hit');
      assert.equal(typeof tid, 'number');
      assert.ok(tid > before, 'the tid of a new transaction');
      db.root.set('k2', 'committed after');
      assert.ok((await db.commit()) > tid);
      await db.close();
      await reopened(path, async (again) => {
        assert.equal(again.root.get('k'), 'committed');
        assert.equal(again.root.get('k2'), 'committed after');
      });
    } finally {
      await closeQuietly(db);
    }
  });

  // Found in review: the resync had shrunk the cache before it failed, and the connection
  // went on with its snapshot from before its own commit: objects it dropped reloaded as
  // they were before that commit, and one the commit made was not found.
  it('db.commit: after the resync fails, the default connection serves what its commit stored', async () => {
    const { ops, fault, failingResync } = readFailingAfterSync();
    const storage = await openFileStorage(newPath('resync-view'), { fileOps: ops, logger: quiet });
    // A small cache, so the resync has objects to drop.
    const db = await open({ storage, cacheSize: 10 });
    const count = 40;
    try {
      for (let i = 0; i < count; i++) db.root.set(`m${i}`, new PersistentMap([['v', 0]]));
      await db.commit();
      for (let i = 0; i < count; i++) db.root.get(`m${i}`).set('v', 1);
      db.root.set('made', new PersistentMap([['v', 'new']]));
      const tid = await failingResync(() => db.commit());
      assert.equal(fault.hits, 1, 'the read error was hit');
      const values = Array.from({ length: count }, (_, i) => db.root.get(`m${i}`).get('v'));
      assert.deepEqual(values, Array(count).fill(1), 'every object as the commit stored it');
      assert.equal(db.root.get('made').get('v'), 'new');
      // A commit with nothing to store answers the last tid, not an older one.
      assert.equal(await db.commit(), tid);
    } finally {
      await closeQuietly(db);
    }
  });

  // Found in review: when the turn check threw (a test's clock) with nothing awaited yet,
  // the run of commits ended before it was noted as running, and no later commit was ever
  // written.
  it('a clock that throws fails the commits waiting; later commits are written', {
    timeout: 30_000,
  }, async () => {
    let broken = false;
    const clockError = Object.assign(new Error('the clock broke'), { code: 'CLOCK' });
    const storage = await openFileStorage(newPath('clock'), {
      durability: 'none',
      logger: quiet,
      clock: () => {
        if (broken) throw clockError;
        return performance.now();
      },
    });
    const db = await open({ storage });
    try {
      db.root.set('n', 1);
      await db.commit();
      broken = true;
      db.root.set('n', 2);
      await assert.rejects(db.commit(), { code: 'CLOCK' });
      broken = false;
      db.root.set('n', 3);
      await db.commit();
      await db.close();
      await reopened(storage.path, async (again) => {
        assert.equal(again.root.get('n'), 3);
      });
    } finally {
      broken = false;
      await closeQuietly(db);
    }
  });

  // Found in review: close() left a staging stopped during a write to discard its file after
  // the write, and resolved first: the file and its descriptor stayed after it.
  it('close() waits for a staging it stopped during a write to let go of its file', async () => {
    const path = newPath('stage-write');
    const storage = await openFileStorage(path, { logger: quiet });
    const writeHeld = deferred();
    const writeGate = deferred();
    let held = false;
    await withFs(
      {
        write:
          (write) =>
          (fd: number, ...rest: unknown[]) => {
            if (held || !pathOf(fd).includes('.blob-')) return write(fd, ...rest);
            held = true;
            writeHeld.resolve();
            void writeGate.promise.then(() => write(fd, ...rest));
          },
      },
      async () => {
        const staging = storage.stageBlob(Buffer.alloc(1000, 1));
        staging.catch(() => undefined);
        await writeHeld.promise;
        let closed = false;
        const closing = storage.close().then(() => {
          closed = true;
        });
        // (Pacing: a close() that did not wait would be over by then, on a machine not busy.)
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.equal(closed, false, 'close() waits for the write under way');
        writeGate.resolve();
        await closing;
        const staged = fs
          .readdirSync(dirname(path))
          .filter((name) => name.startsWith(`${basename(path)}.blob-`) && /-\d+$/.test(name));
        assert.deepEqual(staged, [], 'no staged file after close()');
        await assert.rejects(staging, { code: 'TROVE_CLOSED' });
      },
    );
  });

  // (pack's copyAndSwap: undoing the marker after its write failed).
  it("pack: the marker's write fails (ENOSPC), its undo fails too (EIO): ENOSPC; the next writer takes the marker back", async () => {
    const path = newPath('pack');
    let armed = false;
    const hits = { writes: 0, truncates: 0 };
    const isDataFile = (fd: number) => pathOf(fd) === path;
    const ops: FileOps = {
      write: async (fd, buffer, position) => {
        if (!armed || !isDataFile(fd)) return real.write(fd, buffer, position);
        hits.writes++;
        await real.write(fd, buffer.subarray(0, Math.ceil(buffer.byteLength / 2)), position);
        throw systemError('ENOSPC', 'write');
      },
      sync: (fd, onCallingThread) => real.sync(fd, onCallingThread),
      truncate: async (fd, length) => {
        if (!armed || !isDataFile(fd)) return real.truncate(fd, length);
        hits.truncates++;
        throw systemError('EIO', 'ftruncate');
      },
    };
    const storage = await openFileStorage(path, {
      fileOps: ops,
      durability: 'os',
      logger: quiet,
    });
    const db = await open({ storage });
    try {
      for (let i = 0; i < 20; i++) {
        db.root.set(`k${i}`, new PersistentMap([['i', i]]));
        await db.commit();
      }
      db.root.delete('k0');
      await db.commit();
      armed = true;
      let error: unknown;
      try {
        error = await rejection(() => db.pack());
      } finally {
        armed = false;
      }
      assert.deepEqual(hits, { writes: 1, truncates: 1 }, 'both faults were hit');
      assertIOError(error, 'ENOSPC');
      db.root.set('after', 'committed after the failed pack');
      await db.commit();
      await db.close();
      await reopened(path, async (again) => {
        for (let i = 1; i < 20; i++) assert.equal(again.root.get(`k${i}`).get('i'), i);
        assert.equal(again.root.get('after'), 'committed after the failed pack');
        assert.deepEqual(await again.integrityCheck(), { ok: true, failures: [] });
      });
    } finally {
      armed = false;
      await closeQuietly(db);
    }
  });

  // (Storage.stageBlob: releasing the source after a failed staging).
  it("a blob source whose destroy() throws, when staging fails (ENOSPC): StorageIOError, not destroy()'s", async () => {
    const db = await open(newPath('stage'), { logger: quiet });
    try {
      let destroys = 0;
      let hits = 0;
      // An application's chunk source, with a destroy() that fails.
      const source = {
        destroyed: false,
        async *[Symbol.asyncIterator]() {
          yield Buffer.alloc(1000, 1);
          yield Buffer.alloc(1000, 2);
        },
        destroy() {
          destroys++;
          throw new Error('source.destroy() failed');
        },
      };
      const error = await withFs(
        {
          write:
            (write) =>
            (fd: number, ...rest: unknown[]) => {
              if (!pathOf(fd).includes('.blob-')) return write(fd, ...rest);
              hits++;
              (rest.at(-1) as (error: Error) => void)(systemError('ENOSPC', 'write'));
            },
        },
        () =>
          rejection(() =>
            db.transaction((tx) => {
              tx.root.set('b', Blob.from(source));
            }),
          ),
      );
      assert.ok(hits > 0, 'the fault was hit');
      assert.equal(destroys, 1, 'the source was told to stop');
      assertIOError(error, 'ENOSPC');
      await db.read((tx) => assert.equal(tx.root.get('b'), undefined));
    } finally {
      await closeQuietly(db);
    }
  });

  // (pack's copyAndSwap: the progress bar was stopped only on success).
  it('a failed pack with progress: true leaves no timer of its progress bar behind', async () => {
    const path = newPath('bar');
    let armed = false;
    const ops: FileOps = {
      write: async (fd, buffer, position) => {
        if (armed && pathOf(fd).includes('.pack-')) throw systemError('ENOSPC', 'write');
        return real.write(fd, buffer, position);
      },
      sync: (fd, onCallingThread) => real.sync(fd, onCallingThread),
      truncate: (fd, length) => real.truncate(fd, length),
    };
    const storage = await openFileStorage(path, { fileOps: ops, logger: quiet, progress: true });
    const db = await open({ storage });
    // Standard error made to look like a terminal (the bar shows only there), its output
    // dropped; the bar's timers are tracked so that one left running on a failure can be
    // cleared and does not keep the test process alive.
    const stderr = process.stderr;
    const saved = (['isTTY', 'columns', 'write'] as const).map(
      (key) => [key, Object.getOwnPropertyDescriptor(stderr, key)] as const,
    );
    const setTimeout = globalThis.setTimeout;
    const barTimers: NodeJS.Timeout[] = [];
    const timeouts = () =>
      process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    try {
      for (let i = 0; i < 5; i++) {
        db.root.set(`k${i}`, i);
        await db.commit();
      }
      Object.assign(stderr, { isTTY: true, columns: 80, write: () => true });
      globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
        const timer = setTimeout(...args);
        if (new Error().stack?.includes('cli-progress')) barTimers.push(timer);
        return timer;
      }) as typeof setTimeout;
      const before = timeouts();
      armed = true;
      assertIOError(await rejection(() => db.pack()), 'ENOSPC');
      armed = false;
      assert.ok(barTimers.length > 0, 'a progress bar was shown');
      await db.close();
      assert.equal(timeouts(), before, 'no Timeout left after close()');
    } finally {
      armed = false;
      for (const timer of barTimers) clearTimeout(timer);
      globalThis.setTimeout = setTimeout;
      for (const [key, descriptor] of saved) {
        if (descriptor === undefined) delete (stderr as unknown as Record<string, unknown>)[key];
        else Object.defineProperty(stderr, key, descriptor);
      }
      await closeQuietly(db);
    }
  });
});
