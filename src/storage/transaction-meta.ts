/**
 * The descriptive data a transaction keeps, the same for every storage.
 *
 * @module
 */

/**
 * The note and user of `meta`, the keys of those absent left out: what a transaction keeps
 * (other keys, given or read, are not stored or handed on).
 */
export function keptMeta(
  meta: { readonly note?: string | undefined; readonly user?: string | undefined } | undefined,
): { readonly note?: string; readonly user?: string } {
  const { note, user } = meta ?? {};
  return { ...(note === undefined ? {} : { note }), ...(user === undefined ? {} : { user }) };
}
