/**
 * Many processes and worker threads, one file: read-modify-write increments from 4 children
 * at once lose nothing, with plain attributes (conflicts retried), with a Counter (conflicts
 * resolved), and while the file is packed under them.
 */
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it, type TestContext } from 'node:test';
import { Counter, type Database, open } from 'trove';
import type { IncrementData } from './children/increment.js';
import { Tally } from './support/model.js';
import { finished, type Peer, type PeerKind, startPeer } from './support/peers.js';
import { type Scratch, scratch } from './support/temp-dir.js';

const INCREMENT = new URL('./children/increment.js', import.meta.url);
const PACKER = new URL('./children/packer.js', import.meta.url);
const CHILDREN = 4;
const EACH = 500;

async function createShared(t: TestContext, mode: IncrementData['mode']) {
  const dir = scratch(t);
  const path = dir.file();
  const db = dir.track(await open(path, { durability: 'none' }));
  await db.transaction((tx) => {
    if (mode === 'counter') tx.root.set('counter', new Counter());
    else tx.root.set('tally', new Tally());
  });
  return { dir, path, db };
}

function startIncrementers(
  dir: Scratch,
  kind: PeerKind,
  data: Omit<IncrementData, 'count' | 'durability'>,
): Peer[] {
  const peers: Peer[] = [];
  for (let i = 0; i < CHILDREN; i++) {
    peers.push(dir.track(startPeer(kind, INCREMENT, { ...data, count: EACH, durability: 'none' })));
  }
  return peers;
}

async function valueIn(db: Database, mode: IncrementData['mode']): Promise<number> {
  return db.read((tx) =>
    mode === 'counter'
      ? (tx.root.get('counter') as Counter).value
      : (tx.root.get('tally') as Tally).count,
  );
}

/** The final value, seen by the parent's handle and by a fresh open; the file checks out. */
async function assertFinal(db: Database, path: string, mode: IncrementData['mode']) {
  assert.equal(await valueIn(db, mode), CHILDREN * EACH);
  const report = await db.integrityCheck();
  assert.deepEqual(report.failures, []);
  assert.equal(report.ok, true);
  const again = await open(path, { readOnly: true });
  try {
    assert.equal(await valueIn(again, mode), CHILDREN * EACH);
  } finally {
    await again.close();
  }
}

async function increments(t: TestContext, kind: PeerKind, mode: IncrementData['mode']) {
  const { dir, path, db } = await createShared(t, mode);
  // A Counter never conflicts (resolveConflict merges in the commit), so one attempt each
  // must do; plain attributes retry until they commit.
  const attempts = mode === 'counter' ? 1 : 'infinity';
  const peers = startIncrementers(dir, kind, { path, mode, attempts, pauseAtHalf: false });
  const done = await Promise.all(peers.map((peer) => peer.next('done')));
  await Promise.all(peers.map(finished));
  if (mode === 'counter') {
    for (const message of done) assert.equal(message.runs, EACH, 'a Counter increment retried');
  } else {
    for (const message of done) assert.ok((message.runs as number) >= EACH);
  }
  await assertFinal(db, path, mode);
}

describe('many processes and threads, one file', () => {
  it('4 processes x 500 read-modify-write increments of one attribute give exactly 2000', (t) =>
    increments(t, 'process', 'tally'));

  it('4 worker threads x 500 read-modify-write increments of one attribute give exactly 2000', (t) =>
    increments(t, 'worker', 'tally'));

  it('4 processes x 500 Counter increments give exactly 2000 without a single retry', (t) =>
    increments(t, 'process', 'counter'));

  it('4 worker threads x 500 Counter increments give exactly 2000 without a single retry', (t) =>
    increments(t, 'worker', 'counter'));

  it('4 processes incrementing while the parent packs again and again lose nothing', async (t) => {
    const { dir, path, db } = await createShared(t, 'tally');
    const peers = startIncrementers(dir, 'process', {
      path,
      mode: 'tally',
      attempts: 'infinity',
      pauseAtHalf: true,
    });
    await Promise.all(peers.map((peer) => peer.next('half')));
    // Every child has the old file open; after this pack they must follow the new one.
    const inode = statSync(path).ino;
    const first = await db.pack();
    assert.equal(first.objectsKept, 2);
    assert.notEqual(statSync(path).ino, inode, 'the pack swapped in a new file');
    assert.equal(await valueIn(db, 'tally'), (CHILDREN * EACH) / 2);

    for (const peer of peers) peer.send({ type: 'go' });
    let childrenDone = false;
    const all = Promise.all(peers.map((peer) => peer.next('done'))).finally(() => {
      childrenDone = true;
    });
    let packs = 1;
    while (!childrenDone) {
      const result = await db.pack();
      assert.equal(result.objectsKept, 2);
      packs++;
    }
    await all;
    await Promise.all(peers.map(finished));
    t.diagnostic(`packs: ${packs}`);
    await assertFinal(db, path, 'tally');
  });

  it('4 worker threads incrementing a Counter while another process packs lose nothing', async (t) => {
    const { dir, path, db } = await createShared(t, 'counter');
    const packer = dir.track(startPeer('process', PACKER, { path }));
    await packer.next('ready');
    const peers = startIncrementers(dir, 'worker', {
      path,
      mode: 'counter',
      // A pack removes the revision a Counter resolution starts from: then it retries.
      attempts: 'infinity',
      pauseAtHalf: true,
    });
    await Promise.all(peers.map((peer) => peer.next('half')));
    const inode = statSync(path).ino;
    packer.send({ type: 'pack' });
    await packer.next('packed');
    assert.notEqual(statSync(path).ino, inode, 'the pack swapped in a new file');
    assert.equal(await valueIn(db, 'counter'), (CHILDREN * EACH) / 2);

    packer.send({ type: 'loop' });
    for (const peer of peers) peer.send({ type: 'go' });
    await Promise.all(peers.map((peer) => peer.next('done')));
    packer.send({ type: 'stop' });
    const stopped = await packer.next('stopped');
    await Promise.all([...peers, packer].map(finished));
    t.diagnostic(`packs in the loop: ${String(stopped.packs)}`);
    await assertFinal(db, path, 'counter');
  });
});
