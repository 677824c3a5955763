// `npm run bench`: installs the peers trove is measured against (bench/package.json, only
// for the benchmark) when they are missing or older than their lock file, then runs the
// scenarios in one Node process (bench/run.mjs). Arguments go to bench/run.mjs:
//
//   npm run bench                      every scenario, full sizes (results/<date>.json)
//   npm run bench -- --quick           small sizes, for development
//   npm run bench -- --chart           draws bench/results/chart.svg from the latest results
//   npm run bench -- --only hot-read --systems trove,lmdb
//   npm run bench -- --only durable-commit --systems trove --cpu-prof   (profile; Node flags
//                                      starting with --cpu-prof / --heap-prof go to that process)
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bench = join(root, 'bench');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const argv = process.argv.slice(2);
const nodeFlags = argv.filter((a) => /^--(cpu|heap)-prof/.test(a));
const args = argv.filter((a) => !nodeFlags.includes(a));

function installedIsCurrent() {
  const marker = join(bench, 'node_modules', '.package-lock.json');
  if (!existsSync(marker)) return false;
  return statSync(marker).mtimeMs >= statSync(join(bench, 'package-lock.json')).mtimeMs;
}

function npmRun(npmArgs) {
  return spawnSync(npm, npmArgs, { cwd: root, stdio: 'inherit' }).status === 0;
}

// Drawing the chart and printing the usage need no peers.
const needsPeers = !args.some((a) => a === '--chart' || a === '--help' || a === '-h');
if (needsPeers && !installedIsCurrent()) {
  console.log('bench: installing the peers (npm ci --prefix bench)');
  const common = ['--prefix', 'bench', '--no-audit', '--no-fund'];
  if (!npmRun(['ci', ...common])) {
    // npm ci refuses a lock file that names a platform package the registry in use lacks (a
    // partial mirror); npm install keeps the locked versions and skips what it cannot find.
    console.log('bench: npm ci failed; trying npm install --no-save with the same lock file');
    if (!npmRun(['install', '--no-save', ...common])) {
      console.error('bench: could not install the peers (see bench/package.json)');
      process.exit(1);
    }
  }
}

const result = spawnSync(
  process.execPath,
  ['--expose-gc', ...nodeFlags, join(bench, 'run.mjs'), ...args],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
