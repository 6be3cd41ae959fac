// Re-renders the Markdown and the three SVG charts of a saved report, beside it:
//   node bench/lib/render.mjs path/to/report.json   ->   report.md, report.svg, report-peers.svg, report-roofline.svg
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { toMarkdown } from './report.mjs';
import { allCharts } from './charts.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node bench/lib/render.mjs path/to/report.json');
  process.exit(2);
}
const jsonPath = resolve(file);
const report = JSON.parse(readFileSync(jsonPath, 'utf8'));
const base = jsonPath.replace(/\.json$/, '');
const written = [base + '.md'];
writeFileSync(base + '.md', toMarkdown(report));
for (const [suffix, svg] of Object.entries(allCharts(report))) {
  writeFileSync(`${base}${suffix}.svg`, svg);
  written.push(`${base}${suffix}.svg`);
}
console.error(`wrote ${written.join(', ')}`);
