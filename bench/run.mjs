// Runs the benchmark scenarios in one process, prints a table per scenario and a summary,
// and writes the results (with the machine they ran on) to bench/results/.
// Started by scripts/bench.mjs (`npm run bench`), which installs the peers first.
//
// `node bench/run.mjs --help` lists the options (USAGE below).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseCommandLine } from 'node:util';
import { drawChart } from './lib/chart.mjs';
import { formatValue, printTable } from './lib/common.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const resultsDir = join(here, 'results');

export const SCENARIOS = [
  'durable-commit',
  'group-commit',
  'bulk-write',
  'cold-read',
  'hot-read',
  'open',
  'memory',
];
export const SYSTEMS = ['trove', 'lmdb', 'sqlite', 'level', 'fs'];

const ROUNDS = {
  full: { warmups: 1, runs: 3 },
  quick: { warmups: 1, runs: 3 },
  smoke: { warmups: 0, runs: 1 },
};

const USAGE = `Usage:
  npm run bench [-- options]          (or: node --expose-gc bench/run.mjs [options])
  npm run bench -- --chart [--from <results.json>] [--to <chart.svg>]

Options:
  --quick               small sizes, for development (results/<date>-quick.json)
  --smoke               every scenario once with tiny sizes, to try a change to the harness
  --full                full sizes, the default (results/<date>.json)
  --only <a,b>          scenarios: ${SCENARIOS.join(', ')}
  --systems <a,b>       systems: ${SYSTEMS.join(', ')}
  --runs <n>            timed rounds, the best counts (default 3; 1 with --smoke)
  --warmups <n>         untimed rounds first (default 1; 0 with --smoke)
  --dir <path>          scratch files (default bench/.data)
  --out <file.json>     where the results go
  --keep                keep the scratch files
  --chart               draw the SVG chart from the latest results
  --help                this text
Node flags starting with --cpu-prof or --heap-prof go to the process that runs the scenarios.`;

/** A command-line mistake: the usage is printed and the exit code is 2. */
class UsageError extends Error {}

function names(flag, value, known) {
  const list = value.split(',').filter(Boolean);
  if (list.length === 0) throw new UsageError(`${flag} needs at least one name`);
  for (const n of list) if (!known.includes(n)) throw new UsageError(`unknown ${flag} name: ${n}`);
  return list;
}

function count(flag, value, min) {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`${flag} must be an integer >= ${min}, got ${value}`);
  }
  return n;
}

function parseArgs(argv) {
  let parsed;
  try {
    parsed = parseCommandLine({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean' },
        smoke: { type: 'boolean' },
        full: { type: 'boolean' },
        only: { type: 'string' },
        systems: { type: 'string' },
        runs: { type: 'string' },
        warmups: { type: 'string' },
        dir: { type: 'string' },
        out: { type: 'string' },
        keep: { type: 'boolean' },
        chart: { type: 'boolean' },
        from: { type: 'string' },
        to: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new UsageError(error.message);
  }
  const v = parsed.values;
  const modes = ['quick', 'smoke', 'full'].filter((mode) => v[mode]);
  if (modes.length > 1) throw new UsageError(`choose one of --${modes.join(', --')}`);
  return {
    help: v.help === true,
    mode: modes[0] ?? 'full',
    only: v.only === undefined ? SCENARIOS : names('--only', v.only, SCENARIOS),
    systems: v.systems === undefined ? SYSTEMS : names('--systems', v.systems, SYSTEMS),
    runs: count('--runs', v.runs, 1),
    warmups: count('--warmups', v.warmups, 0),
    dir: v.dir === undefined ? undefined : resolve(v.dir),
    out: v.out === undefined ? undefined : resolve(v.out),
    keep: v.keep === true,
    chart: v.chart === true,
    from: v.from === undefined ? undefined : resolve(v.from),
    to: v.to === undefined ? undefined : resolve(v.to),
  };
}

function tryRun(command, args) {
  try {
    return execFileSync(command, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}

function readText(path) {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The machine: CPU, memory, OS, Node, and the disk and filesystem the databases live on. */
function machineInfo(dir) {
  const cpus = os.cpus();
  let disk = null;
  const mount = tryRun('findmnt', ['-n', '-o', 'SOURCE,FSTYPE,OPTIONS', '-T', dir]);
  if (mount) {
    const [source, fstype, options] = mount.split(/\s+/);
    const device = source?.startsWith('/dev/') ? source.slice(5).replace(/p?\d+$/, '') : null;
    const sys = device ? `/sys/block/${device}` : null;
    const model = sys
      ? [readText(`${sys}/device/vendor`), readText(`${sys}/device/model`)]
          .filter(Boolean)
          .join(' ')
      : '';
    const rotational = sys ? readText(`${sys}/queue/rotational`) : null;
    disk = {
      device: source,
      filesystem: fstype,
      options,
      ...(model ? { model } : {}),
      ...(rotational === null ? {} : { rotational: rotational === '1' }),
      ...(device && readText(`/sys/block/${device}/device/modalias`)?.startsWith('virtio')
        ? { virtual: 'virtio (a virtual machine disk)' }
        : {}),
    };
  }
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? null,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    disk,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

function troveVersion() {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const commit = tryRun('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  const dirty = tryRun('git', ['-C', root, 'status', '--porcelain', '--', 'src']);
  return { version: pkg.version, commit, srcChanged: dirty ? true : undefined };
}

function latestResults() {
  const files = readdirSync(resultsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(resultsDir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  const full = files.find((f) => !f.includes('quick'));
  if (full === undefined && files[0] === undefined) throw new Error(`no results in ${resultsDir}`);
  return full ?? files[0];
}

function chart(args) {
  const from = args.from ?? latestResults();
  const results = JSON.parse(readFileSync(from, 'utf8'));
  const to = args.to ?? join(resultsDir, 'chart.svg');
  writeFileSync(to, drawChart(results));
  console.log(
    `bench: chart of ${relative(process.cwd(), from)} written to ${relative(process.cwd(), to)}`,
  );
}

function summary(results, log) {
  log('\n## summary: trove against its targets');
  for (const s of results.scenarios) {
    if (s.error) {
      log(`   ${s.name}: FAILED: ${s.error}`);
      continue;
    }
    for (const c of s.checks) {
      const verdict = c.met === null ? '' : c.met ? ' met' : ' MISSED';
      if (c.ratio !== undefined) {
        const target = c.target === undefined ? '' : ` (target >= ${c.target}x)`;
        log(`   ${s.name}: ${c.label} = ${c.ratio.toFixed(2)}x${target}${verdict}`);
      } else {
        const bound = c.max !== undefined ? `<= ${c.max}` : `>= ${c.min.toLocaleString('en-US')}`;
        log(
          `   ${s.name}: ${c.label} = ${formatValue(c.value, c.unit)} (target ${bound})${verdict}`,
        );
      }
    }
  }
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`bench: ${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  if (args.chart) {
    chart(args);
    return;
  }
  const log = (line) => console.log(line);
  const scratchRoot = args.dir ?? join(here, '.data', `run-${process.pid}`);
  mkdirSync(scratchRoot, { recursive: true });
  const { peerVersions } = await import('./lib/systems.mjs');
  const ctx = {
    mode: args.mode,
    ...ROUNDS[args.mode],
    ...(args.runs === undefined ? {} : { runs: args.runs }),
    ...(args.warmups === undefined ? {} : { warmups: args.warmups }),
    wants: (system) => args.systems.includes(system),
    scratch: (name) => {
      const dir = join(scratchRoot, name);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
    shared: {},
    results: new Map(),
    log,
  };
  const started = new Date();
  const results = {
    date: started.toISOString(),
    mode: args.mode,
    rounds: `best of ${ctx.runs} after ${ctx.warmups} warm-up round(s), the systems taking turns`,
    machine: machineInfo(scratchRoot),
    versions: { trove: troveVersion(), ...peerVersions() },
    scenarios: [],
  };
  const m = results.machine;
  log(
    `trove bench (${args.mode}): ${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}`,
  );
  if (m.disk)
    log(
      `   disk: ${m.disk.device} ${m.disk.filesystem}${m.disk.virtual ? `, ${m.disk.virtual}` : ''}`,
    );
  log(`   ${results.rounds}; scratch files in ${relative(process.cwd(), scratchRoot) || '.'}`);

  let failed = 0;
  try {
    for (const name of args.only) {
      const scenario = await import(`./${name}.mjs`);
      const t = performance.now();
      try {
        const load = os.loadavg()[0];
        const result = await scenario.run(ctx);
        result.seconds = Math.round((performance.now() - t) / 100) / 10;
        // Other work on the machine skews the numbers: keep what the load was.
        result.loadAverage = [load, os.loadavg()[0]].map((l) => Math.round(l * 100) / 100);
        ctx.results.set(name, result);
        results.scenarios.push(result);
        printTable(result, log);
      } catch (error) {
        failed++;
        console.error(`\nbench: ${name} failed:`, error);
        results.scenarios.push({ name, error: String(error?.stack ?? error) });
      }
    }
  } finally {
    if (!args.keep) rmSync(scratchRoot, { recursive: true, force: true });
  }
  summary(results, log);

  const day = started.toISOString().slice(0, 10);
  const out =
    args.out ??
    (args.mode === 'smoke'
      ? undefined
      : join(resultsDir, args.mode === 'full' ? `${day}.json` : `${day}-quick.json`));
  if (out) {
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
    log(`\nbench: results written to ${relative(process.cwd(), out)}`);
  }
  if (failed > 0) process.exitCode = 1;
}

await main();
