// durable-commit: one writer, one transaction after another, each changing one existing
// record (age + 1) and made durable before the next starts. Also the physical limit: an
// append plus fdatasync with Node's fs, nothing else.

import { closeSync, fdatasync, fdatasyncSync, openSync, write, writeSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { best, bestOf, checkAgeSums, now, ratioCheck } from './lib/common.mjs';
import {
  levelAgeSum,
  levelDecode,
  levelEncode,
  levelFill,
  levelKey,
  levelOpen,
  levelPath,
  lmdbAgeSum,
  lmdbFill,
  lmdbOpen,
  lmdbPath,
  sqliteFill,
  sqliteOpen,
  sqlitePath,
  troveAgeSum,
  troveFill,
  troveOpen,
  trovePath,
} from './lib/systems.mjs';

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

  let fd;
  let position = 0;
  const buffer = Buffer.alloc(RAW_BYTES, 0x5a);
  const raw = {
    system: 'fs',
    label: 'raw fs.writeSync + fdatasyncSync',
    durable: true,
    setup: () => {
      fd = openSync(join(dir, 'raw.log'), 'w');
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
  };
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
      if (fd !== undefined) closeSync(fd);
      if (fdAsync !== undefined) closeSync(fdAsync);
    },
  };
  // For information: the same writes into a file written (allocated) beforehand. fdatasync
  // then has no file size or block allocation to commit, as when SQLite reuses its WAL file;
  // an append always has. Not the baseline of the target, which is the append.
  let fdOver;
  let positionOver = 0;
  const rawOverwrite = {
    system: 'fs',
    label: 'raw overwrite in place: fs.writeSync + fdatasyncSync',
    durable: true,
    comparable: false,
    note: 'into a file written beforehand: no size change to sync (not the baseline)',
    setup: () => {
      fdOver = openSync(join(dir, 'raw-overwrite.log'), 'w');
      const rounds = ctx.warmups + ctx.runs;
      writeSync(fdOver, Buffer.alloc(RAW_BYTES * transactions * rounds), 0);
      fdatasyncSync(fdOver);
    },
    run: async () => {
      const t = now();
      for (let i = 0; i < transactions; i++) {
        writeSync(fdOver, buffer, 0, RAW_BYTES, positionOver);
        positionOver += RAW_BYTES;
        fdatasyncSync(fdOver);
      }
      return { ops: transactions, ms: now() - t };
    },
    teardown: () => {
      if (fdOver !== undefined) closeSync(fdOver);
    },
  };

  let trove;
  let oids;
  let troveDone = 0;
  const troveRow = {
    system: 'trove',
    label: "trove db.transaction (durability 'full')",
    durable: true,
    setup: async () => {
      trove = await troveOpen(trovePath(dir, 'durable'));
      oids = await troveFill(trove, records);
    },
    run: async () => {
      const t = now();
      for (let i = 0; i < transactions; i++) {
        const oid = oids[idOf(troveDone + i, records)];
        await trove.transaction((tx) => {
          const user = tx.getObject(oid);
          user.age = user.age + 1;
        });
      }
      troveDone += transactions;
      return { ops: transactions, ms: now() - t };
    },
    teardown: async () => {
      if (trove === undefined) return;
      totals.trove = await troveAgeSum(trove, oids, records);
      await trove.close();
    },
  };

  let lmdb;
  let lmdbDone = 0;
  const lmdbRow = {
    system: 'lmdb',
    label: 'lmdb get + await put',
    durable: true,
    setup: () => {
      lmdb = lmdbOpen(lmdbPath(dir, 'durable'));
      lmdbFill(lmdb, records);
    },
    run: async () => {
      const t = now();
      for (let i = 0; i < transactions; i++) {
        const id = idOf(lmdbDone + i, records);
        const user = lmdb.get(id);
        user.age = user.age + 1;
        await lmdb.put(id, user);
      }
      lmdbDone += transactions;
      return { ops: transactions, ms: now() - t };
    },
    teardown: async () => {
      if (lmdb === undefined) return;
      totals.lmdb = lmdbAgeSum(lmdb, records);
      await lmdb.close();
    },
  };

  const sqliteRow = (synchronous) => {
    let db;
    let update;
    let sqliteDone = 0;
    return {
      system: 'sqlite',
      label: `better-sqlite3 UPDATE (WAL, synchronous=${synchronous})`,
      durable: synchronous === 'FULL',
      ...(synchronous === 'FULL' ? {} : { note: 'no fsync at commit: not durable on power loss' }),
      setup: () => {
        db = sqliteOpen(sqlitePath(dir, `durable-${synchronous}`), { synchronous });
        sqliteFill(db, records);
        update = db.prepare('UPDATE users SET age = age + 1 WHERE id = ?');
      },
      run: async () => {
        const t = now();
        for (let i = 0; i < transactions; i++) update.run(idOf(sqliteDone + i, records));
        sqliteDone += transactions;
        return { ops: transactions, ms: now() - t };
      },
      teardown: () => {
        if (db === undefined) return;
        totals[`sqlite-${synchronous}`] = db.prepare('SELECT SUM(age) AS s FROM users').get().s;
        db.close();
      },
    };
  };

  let level;
  let levelDone = 0;
  const levelRow = {
    system: 'level',
    label: 'classic-level getSync + put({ sync: true })',
    durable: true,
    setup: async () => {
      level = await levelOpen(levelPath(dir, 'durable'));
      await levelFill(level, records);
    },
    run: async () => {
      const t = now();
      for (let i = 0; i < transactions; i++) {
        const key = levelKey(idOf(levelDone + i, records));
        const user = levelDecode(level.getSync(key));
        user.age = user.age + 1;
        await level.put(key, levelEncode(user), { sync: true });
      }
      levelDone += transactions;
      return { ops: transactions, ms: now() - t };
    },
    teardown: async () => {
      if (level === undefined) return;
      totals.level = levelAgeSum(level, records);
      await level.close();
    },
  };

  const rows = await bestOf(ctx, [
    raw,
    rawAsync,
    rawOverwrite,
    troveRow,
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
