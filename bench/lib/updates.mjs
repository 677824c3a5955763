// What the update scenarios (durable-commit, group-commit) share: per system, a database of
// records 0 .. records-1, the one update they time (one record's age + 1, durable), and the
// proof afterwards that every update landed: the ages, read back, sum to those of the records
// as made plus the number of updates.
//
// `troveUpdates(path, records, totals)` and its likes give a contender (see bestOf) all but its
// label and run: `system`, `durable`, `setup` (open, store the records; not timed), `teardown`
// (sum the ages into `totals[system]` for checkAgeSums, close), and `incrementAge(id)` for the
// scenario's run to time. The update returns the library's own promise (trove's commit, lmdb's
// put, LevelDB's put), so a timed loop awaits just what it would await written inline;
// SQLite's is synchronous and returns nothing to await.

import { makeRecord } from './common.mjs';
import {
  levelDecode,
  levelEncode,
  levelFill,
  levelKey,
  levelOpen,
  lmdbFill,
  lmdbOpen,
  sqliteFill,
  sqliteOpen,
  troveFill,
  troveOpen,
} from './systems.mjs';

/**
 * trove: one transaction (durability 'full') that reads the record by oid and changes it.
 * `options` go to open (as `syncOn`); `key` names the row's sum in `totals`.
 */
export function troveUpdates(path, records, totals, { options = {}, key = 'trove' } = {}) {
  let db;
  let oids;
  return {
    system: 'trove',
    durable: true,
    setup: async () => {
      db = await troveOpen(path, options);
      oids = await troveFill(db, records);
    },
    incrementAge: (id) =>
      db.transaction((tx) => {
        const user = tx.getObject(oids[id]);
        user.age = user.age + 1;
      }),
    teardown: async () => {
      if (db === undefined) return;
      totals[key] = await db.read((tx) => {
        let sum = 0;
        for (let id = 0; id < records; id++) sum += tx.getObject(oids[id]).age;
        return sum;
      });
      await db.close();
    },
  };
}

/** lmdb: get, then the async put (resolves once the write is flushed). */
export function lmdbUpdates(path, records, totals) {
  let db;
  return {
    system: 'lmdb',
    durable: true,
    setup: () => {
      db = lmdbOpen(path);
      lmdbFill(db, records);
    },
    incrementAge: (id) => {
      const user = db.get(id);
      user.age = user.age + 1;
      return db.put(id, user);
    },
    teardown: async () => {
      if (db === undefined) return;
      let sum = 0;
      for (let id = 0; id < records; id++) sum += db.get(id).age;
      totals.lmdb = sum;
      await db.close();
    },
  };
}

/**
 * better-sqlite3: one UPDATE statement (its own transaction), WAL with `synchronous` FULL
 * (durable) or NORMAL (not durable on power loss). Its total is `sqlite-<synchronous>`.
 */
export function sqliteUpdates(path, records, totals, synchronous) {
  let db;
  let update;
  return {
    system: 'sqlite',
    durable: synchronous === 'FULL',
    ...(synchronous === 'FULL' ? {} : { note: 'no fsync at commit: not durable on power loss' }),
    setup: () => {
      db = sqliteOpen(path, { synchronous });
      sqliteFill(db, records);
      update = db.prepare('UPDATE users SET age = age + 1 WHERE id = ?');
    },
    incrementAge: (id) => {
      update.run(id);
    },
    teardown: () => {
      if (db === undefined) return;
      totals[`sqlite-${synchronous}`] = db.prepare('SELECT SUM(age) AS s FROM users').get().s;
      db.close();
    },
  };
}

/** LevelDB: getSync and decode, then put({ sync: true }). */
export function levelUpdates(path, records, totals) {
  let db;
  return {
    system: 'level',
    durable: true,
    setup: async () => {
      db = await levelOpen(path);
      await levelFill(db, records);
    },
    incrementAge: (id) => {
      const key = levelKey(id);
      const user = levelDecode(db.getSync(key));
      user.age = user.age + 1;
      return db.put(key, levelEncode(user), { sync: true });
    },
    teardown: async () => {
      if (db === undefined) return;
      let sum = 0;
      for (let id = 0; id < records; id++) sum += levelDecode(db.getSync(levelKey(id))).age;
      totals.level = sum;
      await db.close();
    },
  };
}

/**
 * Throws unless every system's ages (`totals`, by system) sum to those of the `records`
 * records as made plus `increments`: the scenario's proof that every update landed.
 */
export function checkAgeSums(scenario, totals, records, increments) {
  let expected = increments;
  for (let id = 0; id < records; id++) expected += makeRecord(id).age;
  for (const [system, sum] of Object.entries(totals)) {
    if (sum !== expected) {
      throw new Error(`bench: ${scenario}: ${system} ages sum to ${sum}, expected ${expected}`);
    }
  }
}
