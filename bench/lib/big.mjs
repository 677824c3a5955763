// The large database of the open and memory scenarios (1,000,000 records in full mode), built
// once per run for each system.

import { rmSync } from 'node:fs';
import {
  levelFill,
  levelOpen,
  levelPath,
  lmdbFill,
  lmdbOpen,
  lmdbPath,
  sqliteFill,
  sqliteOpen,
  sqlitePath,
  troveFill,
  troveOpen,
  trovePath,
} from './systems.mjs';

export const bigSizes = { full: 1_000_000, quick: 100_000, smoke: 2000 };

export async function bigDatabases(ctx) {
  if (ctx.shared.big) return ctx.shared.big;
  const count = bigSizes[ctx.mode];
  const dir = ctx.scratch('big');
  const paths = {
    trove: trovePath(dir, 'big'),
    lmdb: lmdbPath(dir, 'big'),
    sqlite: sqlitePath(dir, 'big'),
    level: levelPath(dir, 'big'),
  };
  let oids;
  if (ctx.wants('trove')) {
    ctx.log(`   (building the ${count.toLocaleString('en-US')}-object databases)`);
    const db = await troveOpen(paths.trove);
    oids = await troveFill(db, count);
    await db.close();
  }
  if (ctx.wants('lmdb')) {
    const db = lmdbOpen(paths.lmdb);
    lmdbFill(db, count);
    await db.close();
  }
  if (ctx.wants('sqlite')) {
    const db = sqliteOpen(paths.sqlite);
    sqliteFill(db, count);
    db.pragma('wal_checkpoint(TRUNCATE)');
    db.close();
  }
  if (ctx.wants('level')) {
    const db = await levelOpen(paths.level);
    await levelFill(db, count);
    await db.compactRange('0', '~');
    await db.close();
  }
  ctx.shared.big = { count, paths, oids };
  return ctx.shared.big;
}

/** Removes trove's saved index, so the next open rebuilds it by scanning the whole log. */
export function dropTroveIndex(path) {
  rmSync(`${path}.index`, { force: true });
}
