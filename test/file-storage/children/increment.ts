/**
 * Child (process or worker thread): `count` read-modify-write increments of one shared
 * value, each in its own transaction. With `pauseAtHalf`, it stops halfway, says 'half',
 * and goes on when the parent says 'go' (the parent packs the file in between).
 */
import { type Counter, type Durability, open } from 'trove';
import type { Tally } from '../support/model.js';
import { childData, expect, runChild, tell } from '../support/parent.js';
import '../support/model.js';

export interface IncrementData {
  readonly path: string;
  /** 'tally': a Tally's count attribute (conflicts retried); 'counter': a Counter. */
  readonly mode: 'tally' | 'counter';
  readonly count: number;
  readonly attempts: number | 'infinity';
  readonly pauseAtHalf: boolean;
  readonly durability: Durability;
}

await runChild(async () => {
  const data = childData<IncrementData>();
  const db = await open(data.path, { durability: data.durability });
  const attempts = data.attempts === 'infinity' ? Number.POSITIVE_INFINITY : data.attempts;
  let runs = 0;
  try {
    await tell({ type: 'ready' });
    for (let i = 0; i < data.count; i++) {
      if (data.pauseAtHalf && i === data.count / 2) {
        await tell({ type: 'half' });
        await expect('go');
      }
      await db.transaction(
        (tx) => {
          runs++;
          if (data.mode === 'counter') {
            (tx.root.get('counter') as Counter).increment();
          } else {
            const tally = tx.root.get('tally') as Tally;
            tally.count = tally.count + 1;
          }
        },
        { attempts },
      );
    }
    await tell({ type: 'done', runs });
  } finally {
    await db.close();
  }
});
