/**
 * integrityCheck on a database in use: it gives the event loop turns while it reads (a check
 * of a large file ran for seconds without one), and commits made meanwhile, which only
 * append after the log it reads, are not reported as damage.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { open, PersistentMap } from 'trove';
import { scratch } from './support/temp-dir.js';

describe('integrityCheck while the database is used', () => {
  it('lets timers run while it checks, and commits meanwhile are no failures', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    const maps: PersistentMap<string, number>[] = [];
    for (let i = 0; i < 40; i++) {
      const map = new PersistentMap<string, number>();
      for (let j = 0; j < 500; j++) map.set(`k${j}`, j);
      db.root.set(`m${i}`, map);
      maps.push(map);
      await db.commit();
    }
    for (let round = 0; round < 1500; round++) {
      maps[round % maps.length]!.set('round', round);
      await db.commit();
    }
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
});
