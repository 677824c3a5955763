// An SVG bar chart of one results file, written by hand (no charting dependency): first
// trove's ratio to each reference on a log scale, with the target marked; then, per
// scenario, the value of every system (ops/s, or ms and MiB where lower is better).

const WIDTH = 960;
const LEFT = 420;
const RIGHT = 150;
const BAR = 16;
const GAP = 6;
const COLORS = {
  trove: '#d9480f',
  lmdb: '#1c7ed6',
  sqlite: '#2b8a3e',
  level: '#7048e8',
  fs: '#868e96',
};

const escapeXml = (text) =>
  String(text).replace(
    /[<>&"]/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c],
  );

const fmt = (value) =>
  value >= 100
    ? Math.round(value).toLocaleString('en-US')
    : value.toLocaleString('en-US', { maximumFractionDigits: value >= 10 ? 1 : 2 });

export function drawChart(results) {
  const parts = [];
  let y = 0;
  const text = (x, yy, content, attrs = '') =>
    parts.push(`<text x="${x}" y="${yy}" ${attrs}>${escapeXml(content)}</text>`);
  const plotWidth = WIDTH - LEFT - RIGHT;

  y += 28;
  text(
    16,
    y,
    `trove benchmark, ${results.mode} mode, ${results.date.slice(0, 10)}`,
    'class="title"',
  );
  const m = results.machine;
  y += 20;
  text(
    16,
    y,
    `${m.cpus} x ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}` +
      (m.disk
        ? `; disk ${m.disk.device} ${m.disk.filesystem}${m.disk.virtual ? ' (virtual)' : ''}`
        : ''),
    'class="note"',
  );
  y += 16;
  text(16, y, results.rounds, 'class="note"');

  // ---- ratios, log scale -------------------------------------------------------------------
  // Ratio checks as they are; limit checks (times, sizes, rates) as limit / value, so that
  // here too > 1 is better and the target is 1.
  const checks = [];
  for (const s of results.scenarios) {
    for (const c of s.checks ?? []) {
      if (c.ratio !== undefined) checks.push({ scenario: s.name, ...c });
      else {
        const ratio = c.max !== undefined ? c.max / c.value : c.value / c.min;
        const bound = c.max !== undefined ? `<= ${fmt(c.max)}` : `>= ${fmt(c.min)}`;
        checks.push({
          scenario: s.name,
          label: `${c.label} ${fmt(c.value)} ${c.unit} (${bound})`,
          ratio,
          target: 1,
          met: c.met,
        });
      }
    }
  }
  if (checks.length > 0) {
    y += 34;
    text(
      16,
      y,
      'trove against its targets (log scale; > 1x: trove better than the reference; | marks the target)',
      'class="heading"',
    );
    y += 12;
    const lo = Math.log10(0.01);
    const hi = Math.log10(100);
    const xOf = (ratio) =>
      LEFT + ((Math.min(Math.max(Math.log10(ratio), lo), hi) - lo) / (hi - lo)) * plotWidth;
    const top = y;
    const height = checks.length * (BAR + GAP);
    for (const tick of [0.01, 0.1, 1, 10, 100]) {
      const x = xOf(tick);
      parts.push(
        `<line x1="${x}" y1="${top}" x2="${x}" y2="${top + height}" class="${tick === 1 ? 'one' : 'grid'}"/>`,
      );
      text(x, top + height + 14, `${tick}x`, 'class="tick"');
    }
    for (const c of checks) {
      const x0 = xOf(0.01);
      const x1 = xOf(c.ratio);
      const color = c.met === false ? '#e03131' : c.met ? '#2f9e44' : '#868e96';
      text(LEFT - 8, y + BAR - 4, `${c.scenario}: ${c.label}`, 'class="label" text-anchor="end"');
      parts.push(
        `<rect x="${x0}" y="${y}" width="${Math.max(1, x1 - x0)}" height="${BAR}" fill="${color}"/>`,
      );
      if (c.target !== undefined) {
        const xt = xOf(c.target);
        parts.push(
          `<line x1="${xt}" y1="${y - 2}" x2="${xt}" y2="${y + BAR + 2}" class="target"/>`,
        );
      }
      const xLabel = Math.max(x1, c.target === undefined ? x1 : xOf(c.target)) + 6;
      text(xLabel, y + BAR - 4, `${c.ratio.toFixed(2)}x`, 'class="value"');
      y += BAR + GAP;
    }
    y += 22;
  }

  // ---- each scenario's rows ------------------------------------------------------------------
  for (const s of results.scenarios) {
    if (s.error) continue;
    y += 30;
    text(16, y, `${s.name}: ${s.what}`, 'class="heading"');
    y += 10;
    const groups = new Map();
    for (const r of s.rows) {
      if (!groups.has(r.unit)) groups.set(r.unit, []);
      groups.get(r.unit).push(r);
    }
    for (const [unit, rows] of groups) {
      const max = Math.max(...rows.map((r) => r.value));
      const lower = rows[0].better === 'lower';
      y += 4;
      text(
        LEFT,
        y + 8,
        `${unit}${lower ? ' (lower is better)' : ''}`,
        'class="tick" text-anchor="start"',
      );
      y += 14;
      for (const r of rows) {
        const w = max > 0 ? (r.value / max) * plotWidth : 0;
        const faded = r.durable === false || r.comparable === false ? ' fill-opacity="0.45"' : '';
        const label = `${r.label}${r.durable === false ? ' [not durable]' : ''}`;
        text(
          LEFT - 8,
          y + BAR - 4,
          label.length > 64 ? `${label.slice(0, 62)}…` : label,
          'class="label" text-anchor="end"',
        );
        parts.push(
          `<rect x="${LEFT}" y="${y}" width="${Math.max(1, w)}" height="${BAR}" fill="${COLORS[r.system] ?? '#495057'}"${faded}/>`,
        );
        text(LEFT + w + 6, y + BAR - 4, `${fmt(r.value)} ${unit}`, 'class="value"');
        y += BAR + GAP;
      }
    }
  }
  y += 20;

  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">
<style>
  .title { font-size: 18px; font-weight: 600; fill: #212529; }
  .heading { font-size: 14px; font-weight: 600; fill: #212529; }
  .note { font-size: 12px; fill: #495057; }
  .label { font-size: 12px; fill: #343a40; }
  .value { font-size: 12px; fill: #212529; }
  .tick { font-size: 11px; fill: #868e96; text-anchor: middle; }
  .grid { stroke: #dee2e6; stroke-width: 1; }
  .one { stroke: #495057; stroke-width: 1.5; }
  .target { stroke: #212529; stroke-width: 2.5; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
${parts.join('\n')}
</svg>
`;
}
