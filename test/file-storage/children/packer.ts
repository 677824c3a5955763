/**
 * Child process: packs the database when told. 'pack' runs one pack and answers 'packed';
 * 'loop' packs again and again until 'stop', then answers 'stopped' with the count.
 */
import { open } from 'trove';
import { childData, expect, runChild, tell } from '../support/parent.js';
import '../support/model.js';

await runChild(async () => {
  const { path } = childData<{ path: string }>();
  const db = await open(path, { durability: 'none' });
  try {
    await tell({ type: 'ready' });
    await expect('pack');
    const first = await db.pack();
    await tell({ type: 'packed', objectsKept: first.objectsKept });
    await expect('loop');
    let stop = false;
    void expect('stop').then(() => {
      stop = true;
    });
    let packs = 0;
    while (!stop) {
      await db.pack();
      packs++;
    }
    await tell({ type: 'stopped', packs });
  } finally {
    await db.close();
  }
});
