// durable-commit: one writer, one transaction after another, each changing one existing
// record (age + 1) and made durable before the next starts. Also the physical limit: an
// append plus fdatasync with Node's fs, nothing else.

import { closeSync, fdatasync, fdatasyncSync, openSync, write, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { best, bestOf, now, ratioCheck } from './lib/common.mjs';
import { databasePaths, sqlitePath, trovePath } from './lib/systems.mjs';
import {
  checkAgeSums,
  levelUpdates,
  lmdbUpdates,
  sqliteUpdates,
  troveUpdates,
} from './lib/updates.mjs';

export const name = 'durable-commit';

const sizes = {
  full: { transactions: 2000, records: 10_000 },
  quick: { transactions: 200, records: 2000 },
  smoke: { transactions: 10, records: 100 },
};

/** Bytes a raw append writes: about one small transaction of one record. */
const RAW_BYTES = 256;

/** The id the i-th transaction changes: spread over the records. */
const idOf = (i, records) => (i * 7919) % records;

export async function run(ctx) {
  const { transactions, records } = sizes[ctx.mode];
  const dir = ctx.scratch(name);
  const writePromise = promisify(write);
  const syncPromise = promisify(fdatasync);
  const totals = {};

  /**
   * A run of `update(id)` for the next `transactions` ids of the sequence (idOf), one after
   * another, timed; each run continues where the last ended. `sync`: the update returns nothing
   * to wait for (better-sqlite3), so the loop does not await it, as code calling it would not.
   */
  const oneAfterAnother = (update, { sync = false } = {}) => {
    let done = 0;
    return async () => {
      const t = now();
      if (sync) {
        for (let i = 0; i < transactions; i++) update(idOf(done + i, records));
      } else {
        for (let i = 0; i < transactions; i++) await update(idOf(done + i, records));
      }
      done += transactions;
      return { ops: transactions, ms: now() - t };
    };
  };

  const buffer = Buffer.alloc(RAW_BYTES, 0x5a);
  /**
   * The physical limit: per operation a RAW_BYTES write at the end of what the earlier ones
   * wrote to `file`, then fdatasyncSync. With `preallocated`, the file is written beforehand
   * (see rawOverwrite); else each write appends.
   */
  const rawSyncRow = (file, { preallocated = false, ...row }) => {
    let fd;
    let position = 0;
    return {
      system: 'fs',
      durable: true,
      ...row,
      setup: () => {
        fd = openSync(join(dir, file), 'w');
        if (preallocated) {
          const rounds = ctx.warmups + ctx.runs;
          writeSync(fd, Buffer.alloc(RAW_BYTES * transactions * rounds), 0);
          fdatasyncSync(fd);
        }
      },
      run: async () => {
        const t = now();
        for (let i = 0; i < transactions; i++) {
          writeSync(fd, buffer, 0, RAW_BYTES, position);
          position += RAW_BYTES;
          fdatasyncSync(fd);
        }
        return { ops: transactions, ms: now() - t };
      },
      teardown: () => {
        if (fd !== undefined) closeSync(fd);
      },
    };
  };

  const raw = rawSyncRow('raw.log', { label: 'raw fs.writeSync + fdatasyncSync' });
  let fdAsync;
  let positionAsync = 0;
  const rawAsync = {
    system: 'fs',
    label: 'raw fs.write + fdatasync (async)',
    durable: true,
    setup: () => {
      fdAsync = openSync(join(dir, 'raw-async.log'), 'w');
    },
    run: async () => {
      const t = now();
      for (let i = 0; i < transactions; i++) {
        await writePromise(fdAsync, buffer, 0, RAW_BYTES, positionAsync);
        positionAsync += RAW_BYTES;
        await syncPromise(fdAsync);
      }
      return { ops: transactions, ms: now() - t };
    },
    teardown: () => {
      if (fdAsync !== undefined) closeSync(fdAsync);
    },
  };
  // For information: the same writes into a file written (allocated) beforehand. fdatasync
  // then has no file size or block allocation to commit, as when SQLite reuses its WAL file;
  // an append always has. Not the baseline of the target, which is the append.
  const rawOverwrite = rawSyncRow('raw-overwrite.log', {
    preallocated: true,
    label: 'raw overwrite in place: fs.writeSync + fdatasyncSync',
    comparable: false,
    note: 'into a file written beforehand: no size change to sync (not the baseline)',
  });

  const paths = databasePaths(dir, 'durable');
  const trove = troveUpdates(paths.trove, records, totals);
  const troveRow = {
    ...trove,
    label: "trove db.transaction (durability 'full')",
    run: oneAfterAnother(trove.incrementAge),
  };
  // For information: the same with every sync on the threadpool (the default, 'auto', syncs
  // a lone commit on the calling thread; see README's syncOn).
  const trovePool = troveUpdates(trovePath(dir, 'durable-threadpool'), records, totals, {
    options: { syncOn: 'threadpool' },
    key: 'trove (threadpool)',
  });
  const trovePoolRow = {
    ...trovePool,
    label: "trove db.transaction (durability 'full', syncOn 'threadpool')",
    note: "every sync on the threadpool, never blocking the event loop (not the default: 'auto')",
    run: oneAfterAnother(trovePool.incrementAge),
  };
  const lmdb = lmdbUpdates(paths.lmdb, records, totals);
  const lmdbRow = {
    ...lmdb,
    label: 'lmdb get + await put',
    run: oneAfterAnother(lmdb.incrementAge),
  };
  const sqliteRow = (synchronous) => {
    const sqlite = sqliteUpdates(
      sqlitePath(dir, `durable-${synchronous}`),
      records,
      totals,
      synchronous,
    );
    return {
      ...sqlite,
      label: `better-sqlite3 UPDATE (WAL, synchronous=${synchronous})`,
      run: oneAfterAnother(sqlite.incrementAge, { sync: true }),
    };
  };
  const level = levelUpdates(paths.level, records, totals);
  const levelRow = {
    ...level,
    label: 'classic-level getSync + put({ sync: true })',
    run: oneAfterAnother(level.incrementAge),
  };

  const rows = await bestOf(ctx, [
    raw,
    rawAsync,
    rawOverwrite,
    troveRow,
    trovePoolRow,
    lmdbRow,
    sqliteRow('FULL'),
    sqliteRow('NORMAL'),
    levelRow,
  ]);

  // Every transaction must have changed its record: the ages grew by the number of them.
  checkAgeSums(name, totals, records, transactions * (ctx.warmups + ctx.runs));

  const trove_ = rows.find((r) => r.system === 'trove');
  const peer = best(rows, (r) => r.system !== 'trove' && r.system !== 'fs' && r.durable);
  const baseline = best(rows, (r) => r.system === 'fs'); // the append rows (comparable)
  return {
    name,
    what: `one writer, ${transactions.toLocaleString('en-US')} transactions each changing one object, durable`,
    setup: [
      `${records.toLocaleString('en-US')} records stored first; transaction i changes record (i * 7919) mod ${records} (age + 1)`,
      'trove reads the object by oid (tx.getObject) in db.transaction; lmdb reads with get and awaits put; SQLite runs one UPDATE; LevelDB reads with getSync and awaits put',
      `raw baseline: ${RAW_BYTES}-byte append + fdatasync per operation`,
    ],
    rows,
    checks: [
      ratioCheck('trove / best durable peer', trove_, peer, 1.0),
      ratioCheck('trove / raw append+fdatasync', trove_, baseline, 0.8),
    ].filter(Boolean),
  };
}
