/**
 * integrityCheck on a database in use: it gives the event loop turns while it reads (a check
 * of a large file ran for seconds without one), commits made meanwhile, which only append
 * after the log it reads, are not reported as damage, and close() waits for it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Database, open, PersistentMap } from 'trove';
import { scratch } from './support/temp-dir.js';

/** Adds 20 maps of 500 entries, each written again 30 times: a log to check. */
async function grow(db: Database, round: number): Promise<PersistentMap<string, number>[]> {
  const maps: PersistentMap<string, number>[] = [];
  for (let i = 0; i < 20; i++) {
    const map = new PersistentMap<string, number>();
    for (let j = 0; j < 500; j++) map.set(`k${j}`, j);
    db.root.set(`m${round}-${i}`, map);
    maps.push(map);
    await db.commit();
  }
  for (let again = 0; again < 600; again++) {
    maps[again % maps.length]!.set('again', again);
    await db.commit();
  }
  return maps;
}

/**
 * Grows the database until a check takes several of its turns on this machine, however
 * fast; returns the maps it made.
 */
async function checkable(db: Database): Promise<PersistentMap<string, number>[]> {
  const maps: PersistentMap<string, number>[] = [];
  for (let round = 0; round < 12; round++) {
    maps.push(...(await grow(db, round)));
    const start = performance.now();
    await db.integrityCheck();
    if (performance.now() - start > 60) break;
  }
  return maps;
}

describe('integrityCheck while the database is used', () => {
  it('lets timers run while it checks, and commits meanwhile are no failures', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const maps = await checkable(db);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    await new Promise((resolve) => setTimeout(resolve, 5));
    let checked = false;
    const ticksBefore = ticks;
    let ticksWhile = 0;
    const checking = db.integrityCheck().finally(() => {
      checked = true;
      ticksWhile = ticks - ticksBefore;
    });
    // Commits while the check runs: objects written again, and new ones.
    let during = 0;
    while (!checked) {
      maps[during % maps.length]!.set('during', during);
      db.root.set(`new${during}`, new PersistentMap([['n', during]]));
      await db.commit();
      during++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    clearInterval(timer);
    const report = await checking;
    assert.deepEqual(report.failures, []);
    assert.equal(report.ok, true);
    assert.ok(ticksWhile > 0, 'a timer ran while the check did');
    assert.ok(during > 0, 'commits were made while the check ran');
    assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] });
  });

  // Found in review: close() resolved while a check still read the file.
  // A close() ends a long check at its next turn (close.test.ts); a short one may finish.
  it('close() waits for a check under way to end: it reports, or rejects with ClosedError', async (t) => {
    const dir = scratch(t);
    const db = await open(dir.file(), { durability: 'none' });
    await checkable(db);
    let ended = false;
    const checking = db.integrityCheck().then(
      (report) => {
        ended = true;
        return report.ok;
      },
      (error: { code?: string }) => {
        ended = true;
        return error.code;
      },
    );
    await db.close();
    assert.equal(ended, true, 'the check ended before close() did');
    const outcome = await checking;
    assert.ok(outcome === true || outcome === 'TROVE_CLOSED', String(outcome));
  });
});
