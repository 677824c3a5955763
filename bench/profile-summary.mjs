// Summarizes a V8 CPU profile (node --cpu-prof): the functions with the most self time.
//
//   npm run bench -- --only group-commit --systems trove --quick --cpu-prof --cpu-prof-dir=.tmp/prof
//   node bench/profile-summary.mjs .tmp/prof/<file>.cpuprofile [--top 25]

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith('--'));
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
if (!file) {
  console.error('usage: node bench/profile-summary.mjs <file.cpuprofile> [--top N]');
  process.exit(2);
}

const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfMs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
}

const where = (frame) => {
  if (!frame.url) return '';
  let path = frame.url;
  try {
    if (path.startsWith('file:')) path = relative(process.cwd(), fileURLToPath(path));
  } catch {}
  return `${path}:${frame.lineNumber + 1}`;
};

const totals = new Map();
let total = 0;
for (const [id, ms] of selfMs) {
  const frame = byId.get(id).callFrame;
  const key = `${frame.functionName || '(anonymous)'}  ${where(frame)}`;
  totals.set(key, (totals.get(key) ?? 0) + ms);
  total += ms;
}

const rows = [...totals].sort((a, b) => b[1] - a[1]).slice(0, top);
console.log(`${file}: ${(total / 1000).toFixed(2)} s sampled; top ${rows.length} by self time`);
for (const [key, ms] of rows) {
  console.log(
    `${ms.toFixed(0).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%  ${key}`,
  );
}
