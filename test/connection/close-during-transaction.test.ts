/**
 * close() called while transactions run: each fails with ClosedError (or commits), never
 * with an error that asks for a retry the closed handle cannot make.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Blob, MemoryStorage, open, Persistent, persistent } from 'trove';

/** An object without conflict resolution: two writers of it conflict. */
@persistent('closeDuringTransaction.Account')
class Account extends Persistent {
  balance = 0;
}

describe('close() during transactions', () => {
  // Found in a bug hunt: with attempts left (Infinity here) the conflict reached the caller
  // as a ConflictError, which tells it to try again.
  it('a transaction that conflicts after close() began fails with ClosedError, with attempts left', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'trove-close-tx-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'app.trove');
    const setup = await open(path);
    setup.root.set('account', new Account());
    await setup.commit();
    await setup.close();

    const db = await open(path, { durability: 'os' });
    let arrived = 0;
    let bothRead!: () => void;
    const both = new Promise<void>((resolve) => {
      bothRead = resolve;
    });
    const add = (amount: number) =>
      db.transaction(
        async (tx) => {
          const account = tx.root.get('account') as Account;
          const balance = account.balance;
          if (++arrived === 2) bothRead();
          await both;
          account.balance = balance + amount;
        },
        { attempts: Number.POSITIVE_INFINITY },
      );
    const outcomes = [add(1), add(2)].map((promise) =>
      promise.then(
        () => 'committed',
        (error: { code?: string }) => error.code,
      ),
    );
    await both;
    await new Promise((resolve) => setImmediate(resolve));
    const closing = db.close();
    const settled = (await Promise.all(outcomes)).sort();
    await closing;
    assert.deepEqual(settled, ['TROVE_CLOSED', 'committed']);
    const check = await open(path, { readOnly: true });
    const balance = (check.root.get('account') as Account).balance;
    await check.close();
    assert.ok(balance === 1 || balance === 2, `one of the two committed: ${balance}`);
  });

  // Found in review: close() waiting for a slow commit of the default connection let a
  // transaction's retry start after it, run, and commit.
  it('a transaction that conflicted does not run again once close() began', async () => {
    const storage = new MemoryStorage();
    const db = await open({ storage });
    const check = await open({ storage }); // keeps the storage open after db closes
    db.root.set('n', 0);
    await db.commit();
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const conflicting = db.transaction(
      async (tx) => {
        runs++;
        const n = tx.root.get('n') as number;
        if (runs === 1) await gate;
        tx.root.set('n', n + 1);
      },
      { attempts: 10 },
    );
    await db.transaction((tx) => {
      tx.root.set('n', 100);
    });
    release();
    await new Promise((resolve) => setImmediate(resolve));
    async function* slowly() {
      for (let i = 0; i < 5; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        yield Buffer.from('x');
      }
    }
    db.root.set('blob', Blob.from(slowly()));
    const committing = db.commit();
    const closing = db.close();
    await assert.rejects(conflicting, { code: 'TROVE_CLOSED' });
    await committing;
    await closing;
    assert.equal(runs, 1);
    check.abort();
    assert.equal(check.root.get('n'), 100);
    await check.close();
  });
});
