/**
 * Child (process or worker thread): stages a blob in the FileStorage at `path`, says
 * 'staged', and waits to be ended (killed or terminated) with the blob still staged.
 */
import { FileStorage } from 'trove';
import { childData, expect, runChild, tell } from '../support/parent.js';

await runChild(async () => {
  const { path } = childData<{ path: string }>();
  const storage = await FileStorage.open(path, { durability: 'none' });
  await storage.stageBlob(new TextEncoder().encode('staged by a child'));
  await tell({ type: 'staged' });
  await expect('never');
});
