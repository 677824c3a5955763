/**
 * Child process: starts a pack that stops at a chosen point and says 'stuck' there, so the
 * parent can kill it: 'copying' (the first write of the new file) or 'swapping' (after the
 * marker was written to the old file, at its sync).
 */
import { FileStorage, open } from 'trove';
import { FaultyOps, withFileOps } from '../support/faulty-ops.js';
import { childData, runChild, tell } from '../support/parent.js';
import '../support/model.js';

await runChild(async () => {
  const { path, at } = childData<{ path: string; at: 'copying' | 'swapping' }>();
  const faults = new FaultyOps(path);
  const storage = await FileStorage.open(path, withFileOps({ durability: 'full' }, faults.ops));
  const db = await open({ storage });
  const gate =
    at === 'copying' ? faults.holdNextWrite('other file') : faults.holdNextSync('data file');
  void db.pack();
  await gate.reached;
  await tell({ type: 'stuck' });
  await new Promise(() => undefined); // until killed
});
