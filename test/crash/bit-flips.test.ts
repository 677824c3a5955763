import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Blob, CorruptionError, type Database, oidOf, open, PersistentMap } from 'trove';
import {
  closeQuietly,
  type Dump,
  dump,
  flipBit,
  format,
  quiet,
  rejection,
  type ScannedTransaction,
  tempDir,
  transactions,
} from './support.js';

const { RECORD_HEADER_SIZE, TX_HEADER_SIZE, TX_TRAILER_SIZE, FILE_HEADER_SIZE, TxStatus } = format;

/** A record of the source file: where it is, and what a read of it must find. */
interface Place {
  readonly tx: ScannedTransaction;
  readonly oid: number;
  readonly offset: number;
  readonly dataStart: number;
  readonly dataLength: number;
  /** The tid of the next revision of the object; undefined for its newest revision. */
  readonly nextTid: number | undefined;
}

function assertCorruption(error: unknown, what: string): void {
  assert.ok(error instanceof CorruptionError, `${what}: ${String(error)}`);
  assert.equal(error.code, 'TROVE_CORRUPTION', what);
}

function throws(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('bit flips in committed data', () => {
  const dir = tempDir();
  const source = join(dir.path, 'source.trove');
  let bytes: Buffer;
  let index: Buffer;
  let expected: Dump;
  /** Committed transactions with records, all but the last. */
  let damageable: ScannedTransaction[];
  let places: Place[];
  /** oid of the map `m<k>`, by k. */
  const mapOids = new Map<number, number>();
  let copies = 0;

  before(async () => {
    const db = await open(source, { logger: quiet });
    for (let k = 1; k <= 6; k++) {
      db.root.set(`m${k}`, new PersistentMap<string, unknown>([['payload', `${k}`.repeat(40)]]));
      if (k === 4) db.root.get('m1').set('payload', 'rewritten');
      await db.commit({ note: `commit ${k}` });
      mapOids.set(k, oidOf(db.root.get(`m${k}`))!);
    }
    db.root.set('end', true);
    await db.commit();
    expected = await dump(db.storage);
    await db.close();
    bytes = fs.readFileSync(source);
    index = fs.readFileSync(`${source}.index`);
    const txs = transactions(source);
    const committed = txs.filter((tx) => tx.status === TxStatus.committed);
    damageable = committed.slice(0, -1);
    places = [];
    for (const tx of damageable) {
      for (const record of tx.records) {
        const later = committed.find(
          (other) => other.tid > tx.tid && other.records.some((r) => r.oid === record.oid),
        );
        const dataStart = record.offset + RECORD_HEADER_SIZE + record.refCount * 4;
        places.push({
          tx,
          oid: record.oid,
          offset: record.offset,
          dataStart,
          dataLength: record.dataLength,
          nextTid: later?.tid,
        });
      }
    }
  });

  after(() => dir.remove());

  /** A fresh copy of the source file (and its index), with bits flipped by `damage`. */
  function damagedCopy(damage: (path: string) => void): string {
    const path = join(dir.path, `copy-${++copies}.trove`);
    fs.writeFileSync(path, bytes);
    fs.writeFileSync(`${path}.index`, index);
    damage(path);
    return path;
  }

  function removeCopy(path: string): void {
    for (const name of fs.readdirSync(dir.path)) {
      if (name.startsWith(path.slice(dir.path.length + 1))) fs.rmSync(join(dir.path, name));
    }
  }

  /**
   * The checks for damage inside transaction `tx` (which a later valid transaction follows):
   * - opened with its index (no scan): integrityCheck reports the damage and does not throw;
   *   a read of the damaged record (`place`, if any) is a CorruptionError, and every other
   *   read returns exactly what was committed;
   * - opened without its index (a full scan), writable or read-only: CorruptionError.
   */
  async function checkDamage(
    path: string,
    tx: ScannedTransaction,
    place: Place | undefined,
    what: string,
  ): Promise<void> {
    let db: Database | undefined;
    try {
      db = await open(path, { durability: 'none', logger: quiet });
      const report = await db.integrityCheck();
      assert.equal(report.ok, false, `${what}: integrityCheck reports the damage`);
      assert.ok(report.failures.length > 0, what);
      for (const failure of report.failures) {
        assert.equal(typeof failure.kind, 'string', what);
        assert.equal(typeof failure.detail, 'string', what);
      }
      assert.ok(
        report.failures.some(
          (failure) =>
            failure.offset !== undefined &&
            failure.offset >= tx.offset &&
            failure.offset < tx.offset + tx.length,
        ),
        `${what}: a failure points into the damaged transaction: ${JSON.stringify(report.failures)}`,
      );

      const storage = db.storage;
      for (const [oidText, described] of Object.entries(expected.objects)) {
        const oid = Number(oidText);
        if (place !== undefined && place.nextTid === undefined && place.oid === oid) {
          assertCorruption(
            throws(() => storage.load(oid)),
            `${what}: load of damaged object ${oid}`,
          );
          continue;
        }
        const record = storage.load(oid);
        assert.equal(
          `${record.oid}@${record.tid} [${record.refs.join(',')}] ${Buffer.from(record.data).toString('hex')}`,
          described,
          `${what}: object ${oid} reads as committed`,
        );
      }
      if (place !== undefined && place.nextTid !== undefined) {
        assertCorruption(
          throws(() => storage.loadBefore(place.oid, place.nextTid!)),
          `${what}: historical load of damaged revision of object ${place.oid}`,
        );
      }
      // Through the object graph too, for a damaged map m<k>.
      for (const [k, oid] of mapOids) {
        if (place?.oid !== oid || place.nextTid !== undefined) continue;
        assertCorruption(
          throws(() => db!.root.get(`m${k}`).get('payload')),
          `${what}: reading m${k}`,
        );
      }
      await db.close();
      db = undefined;

      fs.rmSync(`${path}.index`, { force: true });
      for (const readOnly of [false, true]) {
        const error = await rejection(() => open(path, { readOnly, logger: quiet }));
        assertCorruption(error, `${what}: open without index (readOnly ${readOnly})`);
        assert.equal(error.offset, tx.offset, `${what}: the error names the damaged transaction`);
      }
      assert.equal(fs.statSync(path).size, bytes.length, `${what}: the file is left as it was`);
    } finally {
      await closeQuietly(db);
    }
  }

  function mapPlace(k: number): Place {
    const oid = mapOids.get(k)!;
    return places.find((place) => place.oid === oid && place.nextTid === undefined)!;
  }

  it('a flipped bit in the data of a record: first and last data byte, low and high bit', async () => {
    const place = mapPlace(3);
    for (const offset of [place.dataStart, place.dataStart + place.dataLength - 1]) {
      for (const bit of [0, 7]) {
        const path = damagedCopy((p) => flipBit(p, offset, bit));
        await checkDamage(path, place.tx, place, `data byte ${offset} bit ${bit}`);
        removeCopy(path);
      }
    }
  });

  it('a flipped bit in an older revision: historical reads raise CorruptionError', async () => {
    const place = places.find((p) => p.oid === mapOids.get(1) && p.nextTid !== undefined)!;
    assert.ok(place !== undefined);
    const path = damagedCopy((p) => flipBit(p, place.dataStart + 3, 2));
    await checkDamage(path, place.tx, place, 'old revision of m1');
    removeCopy(path);
  });

  it('random bit flips in data bytes of any record of any transaction but the last', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat(),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 0, max: 7 }),
        async (which, where, bit) => {
          const place = places[which % places.length]!;
          const offset = place.dataStart + Math.floor(where * place.dataLength);
          const path = damagedCopy((p) => flipBit(p, offset, bit));
          try {
            await checkDamage(path, place.tx, place, `oid ${place.oid} byte ${offset} bit ${bit}`);
          } finally {
            removeCopy(path);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a flipped bit in any byte of a record header', async () => {
    const place = mapPlace(2);
    for (let i = 0; i < RECORD_HEADER_SIZE; i++) {
      const path = damagedCopy((p) => flipBit(p, place.offset + i, i % 8));
      await checkDamage(path, place.tx, place, `record header byte ${i}`);
      removeCopy(path);
    }
  });

  it('a flipped bit in the refs of a record', async () => {
    const withRefs = places.find((p) => p.oid === 0 && p.dataStart > p.offset + RECORD_HEADER_SIZE);
    assert.ok(withRefs !== undefined && withRefs.nextTid !== undefined);
    const path = damagedCopy((p) => flipBit(p, withRefs.offset + RECORD_HEADER_SIZE, 0));
    await checkDamage(path, withRefs.tx, withRefs, 'root refs');
    removeCopy(path);
  });

  it('a flipped bit in any byte of a transaction header', async () => {
    const tx = damageable[2]!;
    for (let i = 0; i < TX_HEADER_SIZE; i++) {
      const path = damagedCopy((p) => flipBit(p, tx.offset + i, (i * 3) % 8));
      // The records themselves are intact: reads of them stay correct.
      await checkDamage(path, tx, undefined, `transaction header byte ${i}`);
      removeCopy(path);
    }
  });

  it('a flipped bit in the metadata or the trailer of a transaction', async () => {
    const tx = damageable[3]!;
    const metaStart = tx.offset + TX_HEADER_SIZE;
    const metaEnd = tx.records[0]!.offset;
    assert.ok(metaEnd > metaStart, 'the transaction has metadata');
    const trailer = tx.offset + tx.length - TX_TRAILER_SIZE;
    const offsets = [metaStart, metaEnd - 1];
    for (let i = 0; i < TX_TRAILER_SIZE; i++) offsets.push(trailer + i);
    for (const offset of offsets) {
      const path = damagedCopy((p) => flipBit(p, offset, offset % 8));
      await checkDamage(path, tx, undefined, `transaction byte ${offset - tx.offset}`);
      removeCopy(path);
    }
  });

  it('damage in many transactions at once: integrityCheck lists it and does not throw', async () => {
    const path = damagedCopy((p) => {
      for (const tx of damageable) flipBit(p, tx.offset + Math.floor(tx.length / 2), 5);
    });
    const db = await open(path, { durability: 'none', logger: quiet });
    try {
      const report = await db.integrityCheck();
      assert.equal(report.ok, false);
      for (const tx of damageable) {
        assert.ok(
          report.failures.some(
            (f) =>
              f.offset !== undefined && f.offset >= tx.offset && f.offset < tx.offset + tx.length,
          ),
          `damage at transaction ${tx.offset} is reported`,
        );
      }
    } finally {
      await db.close();
      removeCopy(path);
    }
  });

  // Regression: recovery judged damage in a transaction written by a group commit by the
  // next valid transaction only; that one belongs to the same group, so the damage was taken
  // for a torn tail and every later (acknowledged) commit was cut off with it.
  for (const member of ['first', 'second'] as const) {
    it(`damage in the ${member} transaction of a group commit followed by later commits`, async () => {
      const path = join(dir.path, `group-${member}.trove`);
      const db = await open(path, { logger: quiet });
      for (let k = 1; k <= 6; k++) db.root.set(`g${k}`, new PersistentMap([['v', 0]]));
      await db.commit();
      // Concurrent commits: the first is written alone, the others queue meanwhile and are
      // written together as one group sharing one sync.
      await Promise.all(
        [1, 2, 3, 4, 5, 6].map((k) =>
          db.transaction((tx) => {
            tx.root.get(`g${k}`).set('v', k);
          }),
        ),
      );
      db.root.set('later', 1);
      await db.commit();
      db.root.set('later', 2);
      await db.commit();
      await db.close();
      const txs = transactions(path);
      // The transactions of a group after its first point back at that (`group`); the first
      // commit after an oid reservation points back at the reservation.
      const at = (offset: unknown) => txs.find((tx) => tx.offset === offset);
      const grouped = txs.filter((tx) => at(tx.meta.group)?.status === TxStatus.committed);
      assert.ok(grouped.length >= 2, 'the concurrent commits were written as a group');
      const leader = at(grouped[0]!.meta.group)!;
      const damaged = member === 'first' ? leader : grouped[0]!;
      const size = fs.statSync(path).size;
      flipBit(path, damaged.records[0]!.offset + RECORD_HEADER_SIZE + 2, 3);
      fs.rmSync(`${path}.index`);

      let error: unknown;
      try {
        await (await open(path, { logger: quiet })).close();
      } catch (caught) {
        error = caught;
      }
      assert.equal(
        fs.statSync(path).size,
        size,
        'no acknowledged commit is cut off (the file keeps its size)',
      );
      assert.deepEqual(
        fs.readdirSync(dir.path).filter((name) => name.startsWith(`group-${member}.trove.torn`)),
        [],
      );
      assertCorruption(error, 'open of a file damaged inside a group commit');
      assert.equal((error as CorruptionError).offset, damaged.offset);
    });
  }

  // Regression: when a transaction's header fails its checksum, recovery looks for a later
  // valid transaction only within 64 MiB after it. A damaged header of a transaction larger
  // than that (a blob) made every later (acknowledged) commit look like a torn tail: all of
  // it was cut off. The trailers (the length again at each transaction's end) let recovery
  // walk back from the end of the file instead.
  it('a flipped bit in the header of a transaction larger than 64 MiB, before later commits', async () => {
    const path = join(dir.path, 'large.trove');
    const db = await open(path, { durability: 'none', logger: quiet });
    db.root.set('x', 1);
    await db.commit();
    db.root.set('blob', Blob.from(Buffer.alloc(65 * 1024 * 1024, 7)));
    await db.commit();
    db.root.set('x', 2);
    await db.commit();
    await db.close();
    const large = transactions(path).find((tx) => tx.length > 64 * 1024 * 1024)!;
    const size = fs.statSync(path).size;
    flipBit(path, large.offset + 9, 0);
    fs.rmSync(`${path}.index`);
    try {
      let error: unknown;
      try {
        await (await open(path, { durability: 'none', logger: quiet })).close();
      } catch (caught) {
        error = caught;
      }
      assert.equal(fs.statSync(path).size, size, 'no acknowledged commit is cut off');
      assertCorruption(error, 'open of a file with a damaged large transaction');
      assert.equal((error as CorruptionError).offset, large.offset);
    } finally {
      removeCopy(path);
    }
  });

  it('a flipped bit in the file header: CorruptionError at open', async () => {
    for (const offset of [8, 16, 24, 32, 59, 60, 63]) {
      const path = damagedCopy((p) => flipBit(p, offset, 1));
      const error = await rejection(() => open(path, { logger: quiet }));
      assertCorruption(error, `file header byte ${offset}`);
      assert.ok(offset < FILE_HEADER_SIZE);
      removeCopy(path);
    }
  });
});
