// The benchmark's CI smoke test: every scenario runs once in quick mode (quick sizes, no
// warm-up, one run) through the same runner `npm run bench` uses (which installs the peers under bench/ when they are missing),
// and each must produce a well-formed row for every system. Nothing here looks at how fast
// anything was: a slow machine passes as well as a fast one.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

// This file runs as build/test/bench/bench-smoke.test.js.
const root = fileURLToPath(new URL('../../..', import.meta.url));

interface Row {
  system: string;
  label: string;
  durable: boolean | null;
  value: number;
  unit: string;
  better: 'higher' | 'lower';
  runs: number[];
}
interface Scenario {
  name: string;
  what?: string;
  error?: string;
  rows?: Row[];
  checks?: Array<{ label: string; ratio?: number; value?: number; met: boolean | null }>;
}
interface Results {
  mode: string;
  machine: { cpus: number; node: string };
  versions: Record<string, unknown>;
  scenarios: Scenario[];
}

/** The systems each scenario measures ('fs' is the raw append + fdatasync baseline). */
const expected: Record<string, string[]> = {
  'durable-commit': ['fs', 'trove', 'lmdb', 'sqlite', 'level'],
  'group-commit': ['trove', 'lmdb', 'level'],
  'bulk-write': ['trove', 'lmdb', 'sqlite', 'level'],
  'cold-read': ['trove', 'lmdb', 'sqlite', 'level'],
  'hot-read': ['trove', 'lmdb', 'sqlite', 'level'],
  open: ['trove', 'lmdb', 'sqlite', 'level'],
  memory: ['trove', 'lmdb', 'sqlite', 'level'],
};

describe('benchmark smoke run (npm run bench -- --quick --runs 1 --warmups 0)', () => {
  let dir: string;
  let results: Results;
  let output: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'trove-bench-smoke-'));
    const out = join(dir, 'results.json');
    const run = spawnSync(
      process.execPath,
      [
        join(root, 'scripts', 'bench.mjs'),
        '--quick',
        '--runs',
        '1',
        '--warmups',
        '0',
        '--dir',
        join(dir, 'data'),
        '--out',
        out,
      ],
      { cwd: root, encoding: 'utf8', timeout: 10 * 60 * 1000 },
    );
    output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, `the bench runner failed:\n${output}`);
    results = JSON.parse(readFileSync(out, 'utf8')) as Results;
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('records the machine and the versions measured', () => {
    assert.equal(results.mode, 'quick');
    assert.ok(results.machine.cpus > 0);
    assert.equal(results.machine.node, process.version);
    for (const name of ['lmdb', 'better-sqlite3', 'classic-level']) {
      assert.equal(typeof results.versions[name], 'string', `${name} version`);
    }
  });

  it('runs every scenario', () => {
    assert.deepEqual(
      results.scenarios.map((s) => s.name),
      Object.keys(expected),
    );
  });

  for (const [name, systems] of Object.entries(expected)) {
    it(`${name}: completes with a well-formed row for every system`, () => {
      const scenario = results.scenarios.find((s) => s.name === name);
      assert.ok(scenario, `${name} is missing`);
      assert.equal(scenario.error, undefined, `${name} failed: ${scenario.error}`);
      const rows = scenario.rows ?? [];
      assert.deepEqual([...new Set(rows.map((r) => r.system))].sort(), [...systems].sort());
      for (const r of rows) {
        assert.ok(r.label.length > 0);
        // Rates and times are positive; a memory growth may be 0.
        const least = r.unit === 'MiB' ? 0 : Number.MIN_VALUE;
        assert.ok(Number.isFinite(r.value) && r.value >= least, `${r.label}: value ${r.value}`);
        assert.ok(['ops/s', 'objects/s', 'ms', 'MiB', 'bytes'].includes(r.unit), r.unit);
        assert.ok(r.better === 'higher' || r.better === 'lower');
        assert.equal(r.runs.length, 1, `${r.label}: one run`);
        assert.ok(r.runs.every((v) => Number.isFinite(v) && v >= least));
      }
      assert.ok((scenario.checks ?? []).length > 0, `${name} reports trove against its targets`);
      assert.match(output, new RegExp(`## ${name}: `), `${name} printed its table`);
    });
  }
});

describe('benchmark command line (bench/run.mjs)', () => {
  const runner = (...args: string[]) =>
    spawnSync(process.execPath, [join(root, 'bench', 'run.mjs'), ...args], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60 * 1000,
    });

  it('--help lists every scenario and system, runs nothing and exits 0', () => {
    const run = runner('--help');
    assert.equal(run.status, 0, run.stderr);
    for (const name of [...Object.keys(expected), 'fs', 'trove', 'lmdb', 'sqlite', 'level']) {
      assert.ok(run.stdout.includes(name), name);
    }
  });

  for (const args of [
    ['--runs', '0'],
    ['--runs', 'x'],
    ['--warmups', '-1'],
    ['--only', 'no-such-scenario'],
    ['--systems', 'no-such-system'],
    ['--quick', '--smoke'],
    ['--no-such-flag'],
    ['positional'],
  ]) {
    it(`refuses ${args.join(' ')} before running anything: exit code 2, no results written`, () => {
      const dir = mkdtempSync(join(tmpdir(), 'trove-bench-args-'));
      try {
        const out = join(dir, 'results.json');
        const run = runner(...args, '--out', out, '--dir', join(dir, 'data'));
        assert.equal(run.status, 2, run.stderr);
        assert.equal(existsSync(out), false);
        assert.equal(existsSync(join(dir, 'data')), false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
