/**
 * The range of oids, shared by the storages and by the file format's reader (which must not
 * reach up to the Storage class for it).
 *
 * @module
 */

import type { Oid } from './types.js';

/** The largest oid trove stores: oids index typed-array tables, so they stay 32-bit. */
export const MAX_OID: Oid = 0xffff_fffe;
