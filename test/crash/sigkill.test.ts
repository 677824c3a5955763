import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Database, oidOf, open, PersistentMap } from 'trove';
import { Child, quiet, tempDir, tornFiles, withoutTrailingZeros } from './support.js';

/** Kill cycles in all (the issue asks for at least 100 in CI). */
const CYCLES = 100;
/** Most kills come within this many ms after the child has opened the database. */
const MAX_KILL_DELAY = 150;
/** Some come within this many ms after it was started: while it starts, opens, recovers. */
const MAX_EARLY_KILL_DELAY = 400;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('crash: a committing process killed with SIGKILL at random moments', () => {
  const dir = tempDir();
  const path = join(dir.path, 'crash.trove');
  after(() => dir.remove());

  /** What the parent has checked so far. */
  let verifiedN = 0;
  let verifiedHead: number | undefined;
  let cuts = 0;
  let cyclesWithCommits = 0;

  /**
   * Opens the database after a kill and checks it: every acknowledged commit is there, no
   * later one but the one in flight, no partial transaction, integrity ok, a torn tail (if
   * any) kept aside byte for byte, and no temporary files left behind.
   */
  async function verify(acked: number | undefined, cycle: number): Promise<void> {
    const bytes = fs.readFileSync(path);
    const tornBefore = tornFiles(path);
    if (cycle % 10 === 9) fs.rmSync(`${path}.index`, { force: true }); // force a full scan
    const db: Database = await open(path, { logger: quiet });
    try {
      const end = db.stats().storage.bytes;
      assert.deepEqual(
        withoutTrailingZeros(fs.readFileSync(path).subarray(end)).length,
        0,
        `cycle ${cycle}: only zeros (preallocated space) after the log`,
      );
      const newTorn = tornFiles(path).filter((file) => !tornBefore.includes(file));
      // Zeros after the log are preallocated space, not cut off.
      const cut = withoutTrailingZeros(bytes.subarray(end));
      if (cut.length > 0) {
        cuts++;
        assert.equal(newTorn.length, 1, `cycle ${cycle}: the cut bytes are kept aside`);
        assert.deepEqual(fs.readFileSync(newTorn[0]!), cut);
      } else {
        assert.deepEqual(newTorn, [], `cycle ${cycle}: no torn file without a cut`);
      }

      const root = db.root;
      const n: number = root.get('n');
      // The child commits one transaction at a time: the file has every acknowledged commit
      // and at most the one that was in flight.
      const floor = Math.max(acked ?? 0, verifiedN);
      assert.ok(n === floor || n === floor + 1, `cycle ${cycle}: n ${n}, acknowledged ${floor}`);
      // No partial transaction: every record it wrote agrees.
      assert.equal(root.get('a').get('n'), n, `cycle ${cycle}: a`);
      assert.equal(root.get('b').get('n'), n, `cycle ${cycle}: b`);
      const big = root.get('big');
      const bigN = n - (n % 16);
      assert.equal(big.get('n'), bigN, `cycle ${cycle}: big`);
      if (bigN > 0) {
        const payload: string = big.get('payload');
        assert.equal(payload.length, 1024 * 1024);
        assert.ok(
          payload.startsWith(`${bigN}:`) && payload.endsWith(String.fromCharCode(97 + (bigN % 26))),
        );
      }
      // The chain of commits: n, n-1, ... down to the head checked last time.
      let entry = root.get('head');
      for (let k = n; k > verifiedN; k--) {
        assert.equal(entry.get('n'), k, `cycle ${cycle}: chain entry ${k}`);
        entry = entry.get('prev');
      }
      assert.equal(entry === null ? undefined : oidOf(entry), verifiedHead);
      verifiedN = n;
      verifiedHead = n === 0 ? undefined : oidOf(root.get('head'));

      assert.deepEqual(await db.integrityCheck(), { ok: true, failures: [] }, `cycle ${cycle}`);
      // Staged blobs and temporary index files of the killed process are cleaned up.
      const base = basename(path);
      const strays = fs
        .readdirSync(dir.path)
        .filter(
          (name) => name !== base && name !== `${base}.index` && !name.startsWith(`${base}.torn-`),
        );
      assert.deepEqual(strays, [], `cycle ${cycle}: no files left behind`);
      // Keep the file small: drop the old 1 MiB payloads now and then.
      if (cycle % 25 === 24) await db.pack();
    } finally {
      await db.close();
    }
  }

  it(`every acknowledged commit survives ${CYCLES} kills`, async () => {
    const db = await open(path, { logger: quiet });
    db.root.set('n', 0);
    db.root.set('head', null);
    db.root.set('a', new PersistentMap([['n', 0]]));
    db.root.set('b', new PersistentMap([['n', 0]]));
    db.root.set('big', new PersistentMap([['n', 0]]));
    await db.commit();
    await db.close();

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const child = new Child('./commit-child.js', [path]);
      if (cycle % 10 === 5) {
        await sleep(Math.random() * MAX_EARLY_KILL_DELAY);
      } else {
        await child.waitFor((line) => line === 'ready');
        if (cycle % 4 === 0) {
          await sleep(Math.random() * MAX_KILL_DELAY);
        } else if (cycle % 4 === 2) {
          // After its first acknowledged commit: each such cycle commits, however slow the
          // disk (with random kills alone, a busy disk left most cycles without a commit,
          // and the one after a 1 MiB announcement is killed at once).
          await child.waitFor((line) => /^\d+$/.test(line));
          await sleep(Math.random() * MAX_KILL_DELAY);
        } else {
          // Aim at a large write: kill just after the child announces a 1 MiB commit.
          await Promise.race([
            child.waitFor((line) => line.startsWith('big ')).catch(() => undefined),
            sleep(MAX_KILL_DELAY),
          ]);
          await sleep(Math.random() * 3);
        }
      }
      await child.kill();
      const { signal } = await child.exited;
      assert.equal(signal, 'SIGKILL', `cycle ${cycle}: the child ran until it was killed`);
      const numbers = child.lines.filter((line) => /^\d+$/.test(line)).map(Number);
      const acked = numbers.length === 0 ? undefined : Math.max(...numbers);
      if (acked !== undefined) cyclesWithCommits++;
      await verify(acked, cycle);
    }

    // The whole chain, once more from the start.
    const reopened = await open(path, { logger: quiet });
    try {
      let entry = reopened.root.get('head');
      for (let k = verifiedN; k > 0; k--) {
        assert.equal(entry.get('n'), k);
        entry = entry.get('prev');
      }
      assert.equal(entry, null);
      assert.deepEqual(await reopened.integrityCheck(), { ok: true, failures: [] });
    } finally {
      await reopened.close();
    }
    // At least the cycles that waited for a commit (a quarter) committed.
    assert.ok(verifiedN >= CYCLES / 4, `commits were made (${verifiedN} in all)`);
    assert.ok(cyclesWithCommits >= CYCLES / 4, `${cyclesWithCommits} cycles committed`);
    console.log(
      `# ${CYCLES} kills, ${verifiedN} commits, ${cyclesWithCommits} cycles with commits, ${cuts} torn tails cut`,
    );
  });
});
