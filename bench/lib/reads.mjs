// What cold-read and hot-read share: one database per system with the same records (built
// once per run), the same random keys, and the read loop of each system. Every read fetches
// one record by key and reads one field (email) of it; the sum of the email lengths must be
// the same for every system.
//
// Caches: each system gets a cache that holds the whole data set, so a second pass over the
// keys can be served from memory by every system that has a cache: trove's object cache
// (cacheSize above the record count, cacheBytes its default 256 MiB) and its read cache of
// file blocks, SQLite's page cache and LevelDB's block cache at 256 MiB. lmdb reads its
// memory map (no cache of its own unless `cache` is set; rows with it are shown too).

import { best, makeRecord, now, ratioCheck, shuffledIds } from './common.mjs';
import {
  databasePaths,
  fillDatabases,
  levelDecode,
  levelKey,
  levelOpen,
  lmdbOpen,
  sqliteOpen,
  troveOpen,
} from './systems.mjs';

export const readSizes = { full: 200_000, quick: 20_000, smoke: 500 };
const CACHE_BYTES = 256 * 1024 * 1024;

/** Builds (once per run) the read databases of every system with `count` records. */
export async function readDatabases(ctx) {
  if (ctx.shared.reads) return ctx.shared.reads;
  const count = readSizes[ctx.mode];
  const dir = ctx.scratch('reads');
  const paths = databasePaths(dir, 'reads');
  const oids = await fillDatabases(ctx, paths, count);
  let expected = 0;
  for (let id = 0; id < count; id++) expected += makeRecord(id).email.length;
  ctx.shared.reads = { count, paths, oids, keys: shuffledIds(count), expected };
  return ctx.shared.reads;
}

/**
 * The read contenders. Each run opens its database afresh (its caches empty, the OS cache
 * warm), reads every key once in random order (`cold`), and with `hot` reads them all again
 * and times only that second pass. Each pass runs in one read snapshot where the system has
 * them (trove db.read, a SQLite transaction; lmdb reads outside a write share a read
 * transaction; LevelDB's getSync reads the newest state).
 */
export function readers(data, { hot }) {
  const { count, paths, oids, keys, expected } = data;
  const check = (system, sum) => {
    if (sum !== expected) {
      throw new Error(`bench: ${system} read email lengths summing to ${sum}, not ${expected}`);
    }
  };
  /** Runs `open`, the passes, `close`; returns the timing of the last pass. */
  const measured = (system, open, pass, close) => async () => {
    const handle = await open();
    try {
      if (hot) check(system, await pass(handle));
      const t = now();
      const sum = await pass(handle);
      const ms = now() - t;
      check(system, sum);
      return { ops: count, ms };
    } finally {
      await close(handle);
    }
  };

  const trove = {
    system: 'trove',
    label: `trove tx.getObject(oid).email in db.read (cacheSize ${(count + 1000).toLocaleString('en-US')}, readCacheBytes 256 MiB)`,
    note: 'point read by oid: there is no BTree yet',
    run: measured(
      'trove',
      () => troveOpen(paths.trove, { cacheSize: count + 1000, readCacheBytes: CACHE_BYTES }),
      (db) =>
        db.read((tx) => {
          let sum = 0;
          for (let i = 0; i < count; i++) sum += tx.getObject(oids[keys[i]]).email.length;
          return sum;
        }),
      (db) => db.close(),
    ),
  };

  // lmdb three ways: the same pass (one function for all three, as the JIT sees it), with
  // lmdb's object cache off, checked, and unchecked.
  const lmdbPass = (db) => {
    let sum = 0;
    for (let i = 0; i < count; i++) sum += db.get(keys[i]).email.length;
    return sum;
  };
  const lmdbReader = (label, options, row) => ({
    system: 'lmdb',
    label,
    ...row,
    run: measured(
      'lmdb',
      () => lmdbOpen(paths.lmdb, options),
      lmdbPass,
      (db) => db.close(),
    ),
  });
  const lmdb = lmdbReader('lmdb get(id).email');
  const lmdbValidated = lmdbReader(
    'lmdb get(id).email, cache: { validated: true }',
    { cache: { cacheSize: count, validated: true } },
    { note: "lmdb's object cache, checked against the database on each get" },
  );
  const lmdbCached = lmdbReader(
    'lmdb get(id).email, cache: true',
    { cache: { cacheSize: count } },
    {
      note: "lmdb's object cache unchecked: does not see other processes' writes",
      comparable: false,
    },
  );

  const sqlite = {
    system: 'sqlite',
    label: 'better-sqlite3 SELECT * WHERE id = ? (.email), in one transaction',
    run: measured(
      'sqlite',
      () => {
        const db = sqliteOpen(paths.sqlite, { cacheBytes: CACHE_BYTES });
        return { db, get: db.prepare('SELECT * FROM users WHERE id = ?') };
      },
      ({ db, get }) =>
        db.transaction(() => {
          let sum = 0;
          for (let i = 0; i < count; i++) sum += get.get(keys[i]).email.length;
          return sum;
        })(),
      ({ db }) => db.close(),
    ),
  };

  const level = {
    system: 'level',
    label: 'classic-level getSync(key), msgpack decode (.email)',
    run: measured(
      'level',
      () => levelOpen(paths.level, { cacheBytes: CACHE_BYTES }),
      (db) => {
        let sum = 0;
        for (let i = 0; i < count; i++) {
          sum += levelDecode(db.getSync(levelKey(keys[i]))).email.length;
        }
        return sum;
      },
      (db) => db.close(),
    ),
  };

  return [trove, lmdb, lmdbValidated, lmdbCached, sqlite, level];
}

/**
 * The checks of a read scenario: trove against lmdb's plain get (the reference, with
 * the scenario's `target` ratio) and against the fastest other row.
 */
export function readChecks(rows, target) {
  const trove = rows.find((r) => r.system === 'trove');
  return [
    ratioCheck(
      'trove / lmdb get',
      trove,
      rows.find((r) => r.label === 'lmdb get(id).email'),
      target,
    ),
    ratioCheck(
      'trove / best peer',
      trove,
      best(rows, (r) => r.system !== 'trove'),
    ),
  ].filter(Boolean);
}
