// Makes a fresh clone runnable with one command: installs dependencies when they are missing
// or older than the lock file, then brings the build up to date. Uses nothing but Node itself,
// because it runs before anything is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(`prepare: '${command} ${args.join(' ')}' failed`);
    process.exit(result.status ?? 1);
  }
}

function installedIsCurrent() {
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(marker)) return false;
  return statSync(marker).mtimeMs >= statSync(join(root, 'package-lock.json')).mtimeMs;
}

if (!installedIsCurrent()) {
  console.log('prepare: installing dependencies (npm ci)');
  run(npm, ['ci', '--no-audit', '--no-fund']);
}
// tsc -b is incremental: a build that is up to date costs about a second.
run(join(root, 'node_modules', '.bin', 'tsc'), ['-b', 'test/tsconfig.json']);
