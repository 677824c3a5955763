// What every scenario shares: the records, the measurement (best of N after a warm-up, the
// systems taking turns), result rows and the table printed for each scenario.

/** Deterministic pseudo-random numbers (mulberry32), so every system gets the same data. */
export function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = ['Ada', 'Alan', 'Grace', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia'];
const LAST = ['Lovelace', 'Turing', 'Hopper', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Perlman'];
const TAGS = ['admin', 'beta', 'staff', 'trial', 'eu', 'us', 'mobile', 'desktop', 'pro', 'free'];
const EPOCH = 1_700_000_000_000;

/**
 * The record with this id: `{ id, name, email, age, tags: [3 strings], createdAt }`, the same
 * for every system. `createdAt` is milliseconds since 1970 (a number, stored the same way by
 * every system; a Date would be encoded differently by each).
 */
export function makeRecord(id) {
  const next = random(id * 2654435761 + 1);
  const first = FIRST[Math.floor(next() * FIRST.length)];
  const last = LAST[Math.floor(next() * LAST.length)];
  const tag = () => TAGS[Math.floor(next() * TAGS.length)];
  return {
    id,
    name: `${first} ${last}`,
    email: `${first.toLowerCase()}.${last.toLowerCase()}${id}@example.com`,
    age: 18 + Math.floor(next() * 63),
    tags: [tag(), tag(), tag()],
    createdAt: EPOCH + id * 1000,
  };
}

/** The records with ids 0 .. count-1. */
export function makeRecords(count) {
  const records = new Array(count);
  for (let id = 0; id < count; id++) records[id] = makeRecord(id);
  return records;
}

/** The ids 0 .. count-1 in a random order (a fixed seed): every key once. */
export function shuffledIds(count, seed = 42) {
  const ids = new Uint32Array(count);
  for (let i = 0; i < count; i++) ids[i] = i;
  const next = random(seed);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = ids[i];
    ids[i] = ids[j];
    ids[j] = t;
  }
  return ids;
}

/** Frees what the previous measurement left behind, so it does not bill the next one. */
export function collectGarbage() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
}

export const now = () => performance.now();

/**
 * Measures contenders the same way: each runs `warmups` untimed rounds, then `runs` timed
 * ones, the contenders taking turns round by round (so a slow phase of the machine does not
 * land on one system only). A contender is
 * `{ system, label, durable, note?, setup?(), run(round) -> { ops, ms }, teardown?() }`;
 * `run` times its own measured region and returns how many operations it did in how many ms.
 * Returns one row per contender with the best run: the highest rate (`unit`, default ops/s),
 * or with `unit: 'ms'` the shortest time.
 */
export async function bestOf(ctx, contenders) {
  const chosen = contenders.filter((c) => ctx.wants(c.system));
  const timings = new Map(chosen.map((c) => [c, []]));
  try {
    for (const c of chosen) await c.setup?.();
    const rounds = ctx.warmups + ctx.runs;
    for (let round = 0; round < rounds; round++) {
      for (const c of chosen) {
        collectGarbage();
        const { ops, ms } = await c.run(round);
        if (round >= ctx.warmups) timings.get(c).push({ ops, ms });
      }
    }
  } finally {
    for (const c of chosen) await c.teardown?.();
  }
  return chosen.map((c) => {
    if (c.unit === 'ms') {
      const times = timings.get(c).map(({ ms }) => ms);
      return row(c, Math.min(...times), 'ms', times);
    }
    const rates = timings.get(c).map(({ ops, ms }) => (ops * 1000) / ms);
    return row(c, Math.max(...rates), c.unit ?? 'ops/s', rates);
  });
}

/** A result row. `better` says which way is good ('higher' for ops/s, 'lower' for ms). */
export function row(contender, value, unit, runs, better = unit === 'ms' ? 'lower' : 'higher') {
  return {
    system: contender.system,
    label: contender.label,
    durable: contender.durable ?? null,
    comparable: contender.comparable ?? true,
    value,
    unit,
    better,
    runs,
    ...(contender.note ? { note: contender.note } : {}),
  };
}

/**
 * A ratio check: trove's value against a reference, with the target it should reach.
 * `ratio` is trove / reference for rates and reference / trove for times, so > 1 is always
 * "trove better".
 */
export function ratioCheck(label, trove, reference, target) {
  if (trove === undefined || reference === undefined) return undefined;
  const ratio =
    trove.better === 'lower' ? reference.value / trove.value : trove.value / reference.value;
  return {
    label,
    ratio,
    reference: reference.label,
    target,
    met: target === undefined ? null : ratio >= target,
  };
}

/** An absolute check: a value against a limit (`max` for times and sizes, `min` for rates). */
export function limitCheck(label, value, unit, { max, min }) {
  const met = max !== undefined ? value <= max : value >= min;
  return { label, value, unit, ...(max !== undefined ? { max } : { min }), met };
}

/**
 * The best row among `rows` that passes `filter` (highest rate, lowest time), leaving out rows
 * marked not comparable (weaker guarantees than trove gives).
 */
export function best(rows, filter = () => true) {
  let found;
  for (const r of rows.filter((r) => r.comparable !== false && filter(r))) {
    if (
      found === undefined ||
      (r.better === 'lower' ? r.value < found.value : r.value > found.value)
    ) {
      found = r;
    }
  }
  return found;
}

const formatNumber = (value) =>
  value >= 100
    ? Math.round(value).toLocaleString('en-US')
    : value.toLocaleString('en-US', { maximumFractionDigits: value >= 10 ? 1 : 2 });

export function formatValue(value, unit) {
  return `${formatNumber(value)} ${unit}`;
}

/** Prints a scenario's result as a table. */
export function printTable(result, log = console.log) {
  log(`\n## ${result.name}: ${result.what}`);
  for (const line of result.setup ?? []) log(`   ${line}`);
  const header = ['system', 'durable', 'best', 'runs'];
  const lines = result.rows.map((r) => [
    `${r.label}${r.note ? ` (${result.rows.filter((x) => x.note).indexOf(r) + 1})` : ''}`,
    r.durable === null ? '' : r.durable ? 'yes' : 'NO',
    formatValue(r.value, r.unit),
    r.runs.map((v) => formatNumber(v)).join(' / '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const pad = (cells) =>
    cells.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  log(`   ${pad(header)}`);
  log(`   ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const l of lines) log(`   ${pad(l)}`);
  result.rows
    .filter((r) => r.note)
    .forEach((r, i) => {
      log(`   (${i + 1}) ${r.note}${r.comparable === false ? '; never the reference' : ''}`);
    });
  for (const c of result.checks) {
    if (c.ratio !== undefined) {
      const target =
        c.target === undefined ? '' : ` (target >= ${c.target}x: ${c.met ? 'met' : 'MISSED'})`;
      log(`   ${c.label}: ${c.ratio.toFixed(2)}x vs ${c.reference}${target}`);
    } else {
      const bound = c.max !== undefined ? `<= ${formatNumber(c.max)}` : `>= ${formatNumber(c.min)}`;
      log(
        `   ${c.label}: ${formatValue(c.value, c.unit)} (target ${bound} ${c.unit}: ${c.met ? 'met' : 'MISSED'})`,
      );
    }
  }
  for (const note of result.notes ?? []) log(`   note: ${note}`);
  if (result.loadAverage) {
    log(`   (${result.seconds} s; load average ${result.loadAverage.join(' -> ')})`);
  }
}

/** Throws unless every value in `sums` (system -> checksum) is the same. */
export function expectSame(what, sums) {
  const values = new Set(Object.values(sums));
  if (values.size > 1) {
    throw new Error(`bench: ${what} differ between systems: ${JSON.stringify(sums)}`);
  }
}
