// open: the time from open() to the first point read of a large database after a clean close
// (trove loads its saved index and reads no log); then trove's index rebuild rate, after
// its index file was deleted (a full scan of the log).

import { bigDatabases, dropTroveIndex } from './lib/big.mjs';
import { bestOf, limitCheck, now, ratioCheck } from './lib/common.mjs';
import {
  levelDecode,
  levelKey,
  levelOpen,
  lmdbOpen,
  sqliteOpen,
  troveOpen,
} from './lib/systems.mjs';

export const name = 'open';

/** The record the first read fetches. */
const PROBE = 12_345;

export async function run(ctx) {
  const { count, paths, oids } = await bigDatabases(ctx);
  const probe = PROBE % count;
  const timed = async (open, read, close) => {
    const t = now();
    const db = await open();
    const email = await read(db);
    const ms = now() - t;
    await close(db);
    if (typeof email !== 'string') throw new Error('bench: open: the first read found nothing');
    return { ops: 1, ms };
  };
  const readTrove = (db) => db.read((tx) => tx.getObject(oids[probe]).email);

  let troveObjects = 0;
  const rows = await bestOf(ctx, [
    {
      system: 'trove',
      label: 'trove open() + first read (saved index)',
      unit: 'ms',
      run: () =>
        timed(
          () => troveOpen(paths.trove),
          readTrove,
          (db) => db.close(),
        ),
    },
    {
      system: 'lmdb',
      label: 'lmdb open() + first get',
      unit: 'ms',
      run: () =>
        timed(
          () => lmdbOpen(paths.lmdb),
          (db) => db.get(probe).email,
          (db) => db.close(),
        ),
    },
    {
      system: 'sqlite',
      label: 'better-sqlite3 new Database() (WAL) + first SELECT',
      unit: 'ms',
      run: () =>
        timed(
          () => sqliteOpen(paths.sqlite),
          (db) => db.prepare('SELECT * FROM users WHERE id = ?').get(probe).email,
          (db) => db.close(),
        ),
    },
    {
      system: 'level',
      label: 'classic-level open() + first getSync',
      unit: 'ms',
      run: () =>
        timed(
          () => levelOpen(paths.level),
          (db) => levelDecode(db.getSync(levelKey(probe))).email,
          (db) => db.close(),
        ),
    },
    {
      system: 'trove',
      label: 'trove index rebuild: open() after deleting <path>.index',
      unit: 'objects/s',
      run: async () => {
        dropTroveIndex(paths.trove);
        const t = now();
        const db = await troveOpen(paths.trove);
        const ms = now() - t;
        troveObjects = db.stats().storage.objects;
        await db.close(); // saves the index again
        return { ops: troveObjects, ms };
      },
    },
  ]);

  const troveOpenRow = rows.find((r) => r.system === 'trove' && r.unit === 'ms');
  const rebuild = rows.find((r) => r.unit === 'objects/s');
  const peers = rows.filter((r) => r.system !== 'trove' && r.unit === 'ms');
  const fastestPeer = peers.reduce(
    (a, b) => (a === undefined || b.value < a.value ? b : a),
    undefined,
  );
  return {
    name,
    what: `open a ${count.toLocaleString('en-US')}-object database after a clean close; index rebuild`,
    setup: [
      `${count.toLocaleString('en-US')} records per system; timed from open() to the first point read's result`,
      `trove: ${troveObjects.toLocaleString('en-US')} objects in the file (records, their lists, the root)`,
    ],
    rows,
    checks: [
      troveOpenRow && limitCheck('trove open time', troveOpenRow.value, 'ms', { max: 50 }),
      rebuild &&
        limitCheck('trove index rebuild rate', rebuild.value, 'objects/s', { min: 1_000_000 }),
      ratioCheck('trove / fastest peer open', troveOpenRow, fastestPeer),
    ].filter(Boolean),
    ...(ctx.mode === 'full'
      ? {}
      : { notes: ['the targets are for 1,000,000 objects (full mode)'] }),
  };
}
