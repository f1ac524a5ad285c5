/**
 * Synthetic CAPTCHA generation speed, one process, files written to a temporary directory.
 *
 *   npx tsx bench/generate.ts [--count 1000] [--styles railway,hard]
 *
 * Prints a table (style, count, images/s, machine) and writes it to bench/results/generate.md
 * and .json.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { markdownTable, runStart, writeResults } from './lib/results.ts';
import { generateDataset, isCaptchaStyle, renderCaptcha, imageRng, STYLES } from '../src/data/generate/index.ts';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    styles: { type: 'string', default: STYLES.join(',') },
  },
});
const count = Number(values.count);
const styles = values.styles!.split(',');
for (const s of styles) if (!isCaptchaStyle(s)) throw new Error(`unknown style ${s}`);

const started = runStart();
const machine = `${os.cpus()[0]?.model.trim() ?? 'unknown cpu'}, ${os.cpus().length} cores, node ${process.version}`;
// images/s is wall-clock; images per CPU-second (this process, all its threads) is steadier on a
// machine shared with other work.
const rows: string[][] = [['style', 'count', 'images/s', 'images/cpu-s', 'avg bytes', 'load avg', 'machine']];
const results: Array<{ style: string; count: number; imagesPerS: number; imagesPerCpuS: number; avgBytes: number; load1: number }> = [];
for (const style of styles) {
  if (!isCaptchaStyle(style)) continue;
  // Warm-up: font registration, JIT, glyph caches.
  for (let i = 0; i < 50; i++) renderCaptcha(style, imageRng(999, i));
  const dir = mkdtempSync(path.join(os.tmpdir(), `sweep-bench-${style}-`));
  try {
    const cpu0 = process.cpuUsage();
    const { seconds } = await generateDataset({ style, count, seed: 1, out: dir });
    const cpu = process.cpuUsage(cpu0);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    let bytes = 0;
    for (let i = 0; i < Math.min(count, 200); i++) bytes += renderCaptcha(style, imageRng(1, i)).image.length;
    results.push({ style, count, imagesPerS: count / seconds, imagesPerCpuS: count / cpuSeconds, avgBytes: bytes / Math.min(count, 200), load1: os.loadavg()[0] });
    rows.push([
      style,
      String(count),
      (count / seconds).toFixed(0),
      (count / cpuSeconds).toFixed(0),
      (bytes / Math.min(count, 200)).toFixed(0),
      os.loadavg()[0].toFixed(2),
      machine,
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());

writeResults({
  name: 'generate',
  title: 'Synthetic CAPTCHA generation',
  ...started,
  markdown: [
    `${count.toLocaleString('en-US')} images per style written as PNG files to a temporary directory, one process, after 50 warm-up renders. ` +
      'images/s is wall-clock; images per CPU-second (this process, all its threads) is steadier on a shared machine.',
    '',
    markdownTable(
      ['style', 'count', 'images/s', 'images/cpu-s', 'avg bytes', 'load (1 min)'],
      results.map((r) => [r.style, r.count, r.imagesPerS.toFixed(0), r.imagesPerCpuS.toFixed(0), r.avgBytes.toFixed(0), r.load1.toFixed(2)]),
    ),
  ].join('\n'),
  data: { count, styles, results },
});
