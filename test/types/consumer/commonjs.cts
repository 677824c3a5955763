// trove is ESM only: a CommonJS module cannot require it, and its types must say so.
// @ts-expect-error
import trove = require('trove');

export = trove;
