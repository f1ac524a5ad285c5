/**
 * Sweep expansion speed: the pure part of `sweep launch` (parse, expand, hash ids), no I/O.
 *
 *   npx tsx bench/expand.ts [--trials 10000] [--repeats 7]
 *
 * A grid of four parameters with `trials` points in all (10x10x10x10 by default), and a random
 * sweep with run_cap = trials. Prints a table (case, trials, median ms, trials/s, machine) and
 * writes it to bench/results/expand.md and .json.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { markdownTable, runStart, writeResults } from './lib/results.ts';
import { expandSweep } from '../src/scheduler/expand.ts';
import { expandGrid } from '../src/scheduler/grid.ts';
import { sampleRandom } from '../src/scheduler/random.ts';
import { parseSweep, type SweepSpec } from '../src/sweep/index.ts';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '10000' },
    repeats: { type: 'string', default: '7' },
  },
});
const trials = Number(values.trials);
const repeats = Number(values.repeats);
const side = Math.round(Math.pow(trials, 1 / 4));
if (side ** 4 !== trials) throw new Error(`--trials must be a fourth power (10000 = 10^4), got ${trials}`);

const list = (f: (i: number) => number) => `[${Array.from({ length: side }, (_, i) => f(i)).join(', ')}]`;
const gridText = [
  'method: grid',
  'parameters:',
  `  patience: {values: ${list((i) => i + 1)}}`,
  `  alpha: {values: ${list((i) => +(1e-5 * (i + 1)).toPrecision(3))}}`,
  `  dropout: {values: ${list((i) => +(i / (side + 1)).toFixed(3))}}`,
  `  lr: {values: ${list((i) => +(1e-4 * (i + 1)).toPrecision(3))}}`,
].join('\n');
const randomText = [
  'method: random',
  `run_cap: ${trials}`,
  'parameters:',
  '  lr: {distribution: log_uniform_values, min: 1.0e-4, max: 3.0e-3}',
  '  alpha: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-2}',
  '  dropout: {distribution: uniform, min: 0.0, max: 0.5}',
  '  kernel_size: {values: [2, 3, 4]}',
].join('\n');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(run: () => unknown): number {
  run(); // warm-up: JIT
  const ms: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    run();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(ms);
}

const started = runStart();
const grid: SweepSpec = parseSweep(gridText, 'bench-grid.yaml', { trainer: true });
const random: SweepSpec = parseSweep(randomText, 'bench-random.yaml', { trainer: true });
const cases: Array<[string, () => unknown[]]> = [
  ['parse grid file', () => [parseSweep(gridText, 'bench-grid.yaml', { trainer: true })]],
  ['expandGrid (params only)', () => expandGrid(grid)],
  ['expandSweep grid (+ defaults, ids)', () => expandSweep(grid)],
  ['sampleRandom (params only)', () => sampleRandom(random)],
  ['expandSweep random (+ defaults, ids)', () => expandSweep(random)],
];

const machine = `${os.cpus()[0]?.model.trim() ?? 'unknown cpu'}, ${os.cpus().length} cores, node ${process.version}`;
const rows: string[][] = [['case', 'trials', 'median ms', 'trials/s', 'load avg', 'machine']];
const results: Array<{ case: string; trials: number | null; medianMs: number; trialsPerS: number | null }> = [];
for (const [name, run] of cases) {
  const n = run().length;
  const ms = time(run);
  const parse = name.startsWith('parse');
  results.push({ case: name, trials: parse ? null : n, medianMs: ms, trialsPerS: parse ? null : (n / ms) * 1000 });
  rows.push([name, name.startsWith('parse') ? '-' : String(n), ms.toFixed(1), name.startsWith('parse') ? '-' : Math.round((n / ms) * 1000).toLocaleString('en-US'), os.loadavg()[0].toFixed(2), machine]);
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());

writeResults({
  name: 'expand',
  title: 'Sweep expansion: parse, expand, hash ids (no I/O)',
  ...started,
  markdown: [
    `A grid of four parameters, ${trials.toLocaleString('en-US')} points in all, and a random sweep with run_cap ${trials.toLocaleString('en-US')}; median of ${repeats} runs after one warm-up, one process.`,
    '',
    markdownTable(
      ['case', 'trials', 'median ms', 'trials/s'],
      results.map((r) => [r.case, r.trials ?? '-', r.medianMs.toFixed(1), r.trialsPerS === null ? '-' : Math.round(r.trialsPerS).toLocaleString('en-US')]),
    ),
  ].join('\n'),
  data: { trials, repeats, results },
});
