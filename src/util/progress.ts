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
  /** Sets the total, once the work knows it better. */
  setTotal(total: number): void;
  /** Shows the work complete, then removes the display. */
  finish(): void;
  /**
   * Removes the display as it stands (after `finish`, or for work that failed); must be
   * called however the work ends, as a bar's redraw timer would keep the process alive.
   */
  stop(): void;
}

const silent: Progress = { update() {}, setTotal() {}, finish() {}, stop() {} };

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
  let stopped = false;
  return {
    update(done) {
      const now = performance.now();
      if (stopped || now - last < REDRAW_MS) return;
      last = now;
      bar.update(Math.min(done, total));
    },
    setTotal(newTotal) {
      if (stopped || newTotal <= 0) return;
      total = newTotal;
      bar.setTotal(total);
    },
    finish() {
      if (!stopped) bar.update(total);
      this.stop();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
