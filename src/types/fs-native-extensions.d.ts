// Types for the parts of fs-native-extensions trove uses (the package ships none).
declare module 'fs-native-extensions' {
  interface LockOptions {
    shared?: boolean;
  }
  /** Takes an advisory lock on a byte range without waiting; false if it is held elsewhere. */
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    options?: LockOptions,
  ): boolean;
  /** Releases a lock taken on a byte range. */
  export function unlock(fd: number, offset?: number, length?: number): void;
  const fsx: {
    tryLock: typeof tryLock;
    unlock: typeof unlock;
  };
  export default fsx;
}
