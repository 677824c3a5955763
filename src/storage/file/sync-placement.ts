/**
 * Where a durable commit's fdatasync runs: on the calling thread or on libuv's threadpool
 * (`FileStorageOptions.syncOn` says what a user is told).
 *
 * On a fast disk a sync takes about as long as the threadpool's two thread hops, so a lone
 * writer commits a third to a half more often when it syncs on its own thread. The event
 * loop waits meanwhile, though, so this keeps that bounded: only after quick syncs, a few
 * milliseconds a turn, and never for a while after one turned out slow.
 *
 * @module
 */

/** Where a durable commit's fdatasync runs (see `FileStorageOptions.syncOn`). */
export type SyncOn = 'auto' | 'threadpool';

/**
 * A sync quicker than this many milliseconds is quick: on the calling thread, the event
 * loop then waits about as long as a threadpool round trip would have cost anyway.
 */
const QUICK_SYNC_MS = 1;
/** A lone commit syncs on the calling thread only after this many quick syncs in a row. */
const QUICK_SYNCS_BEFORE_CALLING_THREAD = 8;
/**
 * After a slow sync on the calling thread, syncs stay on the threadpool this many times as
 * long as it took: syncs that turn out slow then take at most about a tenth of the event
 * loop's time, however busy the disk gets, while a rare slow one (on the machine of
 * README's table, about one sync in a few hundred takes 1 to 15 ms) costs little.
 */
const THREADPOOL_AFTER_SLOW_SYNC = 10;
/**
 * Once the first sync on the calling thread in a turn of the event loop began this many ms
 * ago, the next one waits for the next turn: timers and I/O wait at most about this long.
 */
const CALLING_THREAD_MS_PER_TURN = 2;

/**
 * One handle's record of its syncs, and the choice of thread for the next. Times are in ms
 * of the handle's clock (`now`, `start`, `end`).
 *
 * Only a `lone` commit may sync on the calling thread: one small commit written alone, with
 * no other commit waiting (`othersWaiting`), so no other commit could use the event loop's
 * time meanwhile. Everything else syncs on the threadpool, where the next group's writers
 * work while the disk does.
 */
export class SyncPlacement {
  readonly #syncOn: SyncOn;
  /** Quick syncs in a row, up to the last one. */
  #quickSyncs = 0;
  /** Until when syncs stay on the threadpool after a slow one. */
  #threadpoolUntil = 0;
  /** When the first sync on the calling thread in this turn of the event loop began. */
  #callingThreadSince: number | undefined;

  constructor(syncOn: SyncOn) {
    this.#syncOn = syncOn;
  }

  /**
   * Whether a sync about to start at `now` should first let the event loop go round once:
   * it could run on the calling thread, but this turn's time for that is up. (Sending it to
   * the threadpool instead gives timers and I/O their turn too, but costs two thread hops: a
   * lone writer lost about a tenth of its commits a second to that, one sync in eight.)
   */
  waitsForNextTurn(lone: boolean, othersWaiting: boolean, now: number): boolean {
    const since = this.#callingThreadSince;
    return (
      since !== undefined &&
      now - since >= CALLING_THREAD_MS_PER_TURN &&
      this.#allowed(lone, othersWaiting, now)
    );
  }

  /**
   * Whether a sync starting at `now` runs on the calling thread; one that does counts
   * against this turn of the event loop.
   */
  onCallingThread(lone: boolean, othersWaiting: boolean, now: number): boolean {
    const since = this.#callingThreadSince;
    const here =
      this.#allowed(lone, othersWaiting, now) &&
      (since === undefined || now - since < CALLING_THREAD_MS_PER_TURN);
    if (here && since === undefined) {
      this.#callingThreadSince = now;
      setImmediate(() => {
        this.#callingThreadSince = undefined;
      });
    }
    return here;
  }

  /**
   * Counts a sync that began at `start` and was over at `end`: on the calling thread when
   * the call returned; on the threadpool when the event loop heard of it, so that a busy
   * event loop keeps syncs there.
   */
  took(start: number, end: number, onCallingThread: boolean): void {
    if (end - start < QUICK_SYNC_MS) {
      this.#quickSyncs++;
    } else {
      this.#quickSyncs = 0;
      if (onCallingThread) this.#threadpoolUntil = end + THREADPOOL_AFTER_SLOW_SYNC * (end - start);
    }
  }

  #allowed(lone: boolean, othersWaiting: boolean, now: number): boolean {
    return (
      lone &&
      !othersWaiting &&
      this.#syncOn === 'auto' &&
      this.#quickSyncs >= QUICK_SYNCS_BEFORE_CALLING_THREAD &&
      now >= this.#threadpoolUntil
    );
  }
}
