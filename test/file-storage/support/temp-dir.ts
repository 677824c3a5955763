import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/** Something to close when the test ends (a Database, a FileStorage). */
interface Closable {
  close(): Promise<void>;
}

/** A scratch directory for one test: closes what the test tracked, then is removed. */
export interface Scratch {
  /** The directory. */
  readonly dir: string;
  /** A path inside it (default: the data file `app.trove`). */
  file(name?: string): string;
  /** Closes `handle` when the test ends (before the directory goes); returns it. */
  track<T extends Closable>(handle: T): T;
}

/** A new empty directory under the system temp dir, removed when the test ends. */
export function scratch(t: TestContext, prefix = 'trove-file-'): Scratch {
  // Its real path: tests compare it with the paths of open descriptors (/proc/self/fd),
  // which a TMPDIR through a symlink would never match.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  const handles: Closable[] = [];
  t.after(async () => {
    for (const handle of handles.reverse()) await handle.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    file: (name = 'app.trove') => join(dir, name),
    track: (handle) => {
      handles.push(handle);
      return handle;
    },
  };
}

/** Resolves after `ms` milliseconds (pacing only; no test asserts on time). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits until `condition()` holds, checking every few milliseconds. Throws after `limitMs`
 * (a safety net against hanging, not a performance expectation).
 */
export async function waitUntil(
  condition: () => boolean,
  what: string,
  limitMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(2);
  }
}
