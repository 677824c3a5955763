/**
 * Child process run to its end by the parent (spawnSync, no messages): opens the database
 * at argv[2], sets root[argv[3]] to the number argv[4], commits and closes.
 */
import { open } from 'trove';

const [path, key, value] = process.argv.slice(2) as [string, string, string];
const db = await open(path, { durability: 'none' });
db.root.set(key, Number(value));
await db.commit();
await db.close();
