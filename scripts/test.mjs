// The whole check CI runs: format and lint, layer order, then every test file of the built
// package. Each step runs even when an earlier one failed, so one run shows every problem.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const onlyTests = process.argv.slice(2);

function testFiles(dir) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...testFiles(path));
    else if (entry.name.endsWith('.test.js')) found.push(path);
  }
  return found.sort();
}

const steps = [];
if (onlyTests.length === 0) {
  steps.push(['format and lint', bin('biome'), ['check', '.']]);
  steps.push([
    'layers and cycles',
    bin('depcruise'),
    ['src', '--config', '.dependency-cruiser.cjs'],
  ]);
}
const files = testFiles(join(root, 'build', 'test')).filter(
  (file) => onlyTests.length === 0 || onlyTests.some((name) => file.includes(name)),
);
steps.push([
  `tests (${files.length} files)`,
  process.execPath,
  [
    '--test',
    '--test-concurrency=2',
    '--test-timeout=600000',
    ...files.map((f) => relative(root, f)),
  ],
]);

const failed = [];
for (const [name, command, args] of steps) {
  console.log(`\n== ${name}`);
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  console.log(
    `== ${name}: ${result.status === 0 ? 'ok' : 'FAILED'} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
  if (result.status !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\nFailed: ${failed.join(', ')}`);
  process.exit(1);
}
