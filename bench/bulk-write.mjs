// bulk-write: many new records in one durable transaction, into a fresh database each run.
// Timed: creating the stored form of each record (trove: the User objects) and the commit
// up to its durability point. Not timed: making the plain records, opening, closing.

import { best, bestOf, makeRecords, now, ratioCheck } from './lib/common.mjs';
import {
  levelEncode,
  levelKey,
  levelOpen,
  levelPath,
  lmdbOpen,
  lmdbPath,
  PersistentList,
  removeLevel,
  removeLmdb,
  removeSqlite,
  removeTrove,
  sqliteInsert,
  sqliteOpen,
  sqlitePath,
  troveOpen,
  trovePath,
  User,
} from './lib/systems.mjs';

export const name = 'bulk-write';

const sizes = { full: 100_000, quick: 10_000, smoke: 200 };

export async function run(ctx) {
  const count = sizes[ctx.mode];
  const dir = ctx.scratch(name);
  const records = makeRecords(count);
  const counts = {};

  const troveRow = {
    system: 'trove',
    label: "trove db.transaction: new User objects in a PersistentList (durability 'full')",
    durable: true,
    run: async () => {
      const path = trovePath(dir, 'bulk');
      removeTrove(path);
      const db = await troveOpen(path);
      const t = now();
      await db.transaction((tx) => {
        const list = new PersistentList();
        for (let i = 0; i < count; i++) list.push(new User(records[i]));
        tx.root.set('users', list);
      });
      const ms = now() - t;
      counts.trove = db.stats().storage.objects - 2; // less the root and the list
      await db.close();
      return { ops: count, ms };
    },
  };

  const lmdbRow = {
    system: 'lmdb',
    label: 'lmdb transactionSync (+ await flushed)',
    durable: true,
    run: async () => {
      const path = lmdbPath(dir, 'bulk');
      removeLmdb(path);
      const db = lmdbOpen(path);
      const t = now();
      db.transactionSync(() => {
        for (let i = 0; i < count; i++) db.put(records[i].id, records[i]);
      });
      await db.flushed;
      const ms = now() - t;
      counts.lmdb = db.getCount();
      await db.close();
      return { ops: count, ms };
    },
  };

  const sqliteRow = (synchronous) => ({
    system: 'sqlite',
    label: `better-sqlite3 INSERTs in one transaction (WAL, synchronous=${synchronous})`,
    durable: synchronous === 'FULL',
    ...(synchronous === 'FULL' ? {} : { note: 'no fsync at commit: not durable on power loss' }),
    run: async () => {
      const path = sqlitePath(dir, `bulk-${synchronous}`);
      removeSqlite(path);
      const db = sqliteOpen(path, { synchronous });
      const insert = sqliteInsert(db);
      const t = now();
      db.transaction(() => {
        for (let i = 0; i < count; i++) insert(records[i]);
      })();
      const ms = now() - t;
      counts[`sqlite-${synchronous}`] = db.prepare('SELECT COUNT(*) AS n FROM users').get().n;
      db.close();
      return { ops: count, ms };
    },
  });

  const levelRow = {
    system: 'level',
    label: 'classic-level batch({ sync: true })',
    durable: true,
    run: async () => {
      const path = levelPath(dir, 'bulk');
      removeLevel(path);
      const db = await levelOpen(path);
      const t = now();
      const ops = new Array(count);
      for (let i = 0; i < count; i++) {
        ops[i] = { type: 'put', key: levelKey(records[i].id), value: levelEncode(records[i]) };
      }
      await db.batch(ops, { sync: true });
      const ms = now() - t;
      let n = 0;
      for await (const _ of db.keys()) n++;
      counts.level = n;
      await db.close();
      return { ops: count, ms };
    },
  };

  const rows = await bestOf(ctx, [
    troveRow,
    lmdbRow,
    sqliteRow('FULL'),
    sqliteRow('NORMAL'),
    levelRow,
  ]);
  for (const [system, n] of Object.entries(counts)) {
    if (n !== count) throw new Error(`bench: ${name}: ${system} stored ${n} records, not ${count}`);
  }
  const trove = rows.find((r) => r.system === 'trove');
  return {
    name,
    what: `${count.toLocaleString('en-US')} new objects in one transaction`,
    setup: [
      'a fresh database each run; timed from the first record to the durable commit',
      'trove: a PersistentList of User objects set on the root (no BTree yet)',
    ],
    rows,
    checks: [
      ratioCheck(
        'trove / best durable peer',
        trove,
        best(rows, (r) => r.system !== 'trove' && r.durable),
        1.2,
      ),
    ].filter(Boolean),
  };
}
