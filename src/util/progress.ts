/**
 * Progress of long operations (index rebuild, pack) shown on a terminal. cli-progress draws
 * the bar; trove only decides when to show one: when asked, and only on a TTY, so logs and
 * pipes stay clean.
 *
 * @module
 */

import cliProgress from 'cli-progress';

/** A progress display; updates are cheap and may be called often. */
export interface Progress {
  /** Reports how much of the total is done. */
  update(done: number): void;
  /** Removes the display. */
  stop(): void;
}

const silent: Progress = { update() {}, stop() {} };

/** Minimum time between redraws. */
const REDRAW_MS = 100;

/**
 * A progress bar for `label` over `total` units (bytes, objects), or a silent one unless
 * `enabled` and standard error is a terminal.
 */
export function startProgress(
  label: string,
  total: number,
  enabled: boolean | undefined,
): Progress {
  if (!(enabled ?? process.stderr.isTTY) || !process.stderr.isTTY || total <= 0) return silent;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {eta_formatted} left`,
      stream: process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  let last = 0;
  return {
    update(done) {
      const now = performance.now();
      if (now - last < REDRAW_MS) return;
      last = now;
      bar.update(Math.min(done, total));
    },
    stop() {
      bar.update(total);
      bar.stop();
    },
  };
}
