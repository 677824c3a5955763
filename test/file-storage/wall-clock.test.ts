/**
 * Tids and the wall clock (found by a hunt of time): a tid is the commit's time by the wall
 * clock read at the commit, whatever the clock did since the process started, and a clock
 * behind, before 1970 or past the largest tid gives the last tid plus one; the writer lock's
 * wait is timed by a monotonic clock.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { open, tidToDate } from 'trove';
import { Tally } from './support/model.js';
import { finished, startPeer } from './support/peers.js';
import { scratch } from './support/temp-dir.js';

const HOLD_LOCK = new URL('./children/hold-lock.js', import.meta.url);
const HOUR = 3_600_000;

/** Makes Date.now() return `shift(real now)` until the test ends. */
function shiftWallClock(t: TestContext, shift: (now: number) => number): void {
  const realNow = Date.now;
  Date.now = () => shift(realNow());
  t.after(() => {
    Date.now = realNow;
  });
}

describe('tids and the wall clock', () => {
  // A process started before the clock was stepped (NTP at boot), or a machine suspended,
  // wrote tids an hour off: views `at` a Date and packs' keepHistorySince meant other times.
  it('a tid is the wall-clock time at the commit, even after the clock was stepped', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    // Stepped forward (a clock corrected at boot, after this process started).
    shiftWallClock(t, (now) => now + HOUR);
    db.root.set('n', 1);
    const tid = await db.commit();
    assert.ok(Math.abs(tidToDate(tid).getTime() - Date.now()) < 60_000, 'the tid is the time');
    const view = await open(dir.file(), { at: new Date(Date.now()), readOnly: true });
    t.after(() => view.close());
    assert.equal(view.root.get('n'), 1, 'a view as of now shows the commit just made');
  });

  it('a clock behind the last tid, before 1970 or past 2255 gives the last tid plus one', async (t) => {
    const dir = scratch(t);
    const db = dir.track(await open(dir.file(), { durability: 'none' }));
    db.root.set('n', 0);
    let last = await db.commit();
    for (const wall of [Date.now() - HOUR, -HOUR, Date.UTC(2300, 0, 1)]) {
      shiftWallClock(t, () => wall);
      db.root.set('n', (db.root.get('n') as number) + 1);
      const tid = await db.commit();
      assert.equal(tid, last + 1, new Date(wall).toISOString());
      last = tid;
    }
    // A file made with the clock before 1970 records its creation as 0, not a failure.
    const made = await open(dir.file('before-1970.trove'), { durability: 'none' });
    made.root.set('n', 1);
    await made.commit();
    await made.close();
  });

  it("a step of the wall clock does not end a writer's wait for the lock early", async (t) => {
    const dir = scratch(t);
    const path = dir.file();
    const setup = await open(path, { durability: 'none' });
    setup.root.set('tally', new Tally(1));
    await setup.commit();
    await setup.close();
    const holder = dir.track(startPeer('process', HOLD_LOCK, { path }));
    await holder.next('holding');
    const writer = dir.track(await open(path, { durability: 'none', busyTimeout: 60_000 }));
    const waiting = writer.transaction(
      (tx) => {
        tx.root.set('w', 5);
      },
      { attempts: 1 },
    );
    // An hour forward while it waits: a deadline by the wall clock passed at once.
    await new Promise((resolve) => setTimeout(resolve, 50));
    shiftWallClock(t, (now) => now + HOUR);
    await new Promise((resolve) => setTimeout(resolve, 100));
    holder.send({ type: 'release' });
    await holder.next('committed');
    await finished(holder);
    await waiting;
    assert.equal(await writer.read((tx) => tx.root.get('w')), 5);
  });
});
