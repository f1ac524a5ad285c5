/**
 * Kernel sizes under one CPU budget: the accuracy recipe (width 0.125, railway CAPTCHAs, the
 * same data and seeds) with 3x3 and 3x5 kernels under the report's padding, and 5x5 under
 * `padding: same` (four blocks of 5x5 `valid` convs leave no feature map of a 60-pixel image).
 * Each arm is one `bench/accuracy.ts` process (one core on wasm), its test sequence accuracy
 * measured after every epoch against its own CPU minutes, so other load on the machine slows
 * the wall clock but does not change the comparison.
 *
 *   npx tsx bench/kernel-sizes.ts [--budget-min 25] [--train 20000] [--pretrain 1] [--gru 3] [--parallel 2] [--nice 0]
 *                                 [--out bench/out/kernel-sizes] [--page-only]
 *
 * An arm stopped part way goes on where it was when the script is run again with the same
 * settings (accuracy.ts resumes from its checkpoint). Writes bench/results/kernel-sizes.md and .json.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { forwardMacs } from '../src/train/model.ts';
import { DEFAULT_PARAMS } from '../src/train/params.ts';
import type { Padding } from '../src/train/geometry.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    'budget-min': { type: 'string', default: '25' },
    train: { type: 'string', default: '20000' },
    pretrain: { type: 'string', default: '1' },
    gru: { type: 'string', default: '3' },
    parallel: { type: 'string', default: '2' },
    nice: { type: 'string', default: '0' },
    out: { type: 'string', default: 'bench/out/kernel-sizes' },
    /** Only rewrite the results page from the arms' curves so far (a run still going, or stopped). */
    'page-only': { type: 'boolean', default: false },
  },
});

interface Arm {
  name: string;
  kernel: number;
  kernelWidth: number;
  padding: Padding;
}
const ARMS: Arm[] = [
  { name: '3x3', kernel: 3, kernelWidth: 0, padding: 'report' },
  { name: '3x5', kernel: 3, kernelWidth: 5, padding: 'report' },
  { name: '5x5 same', kernel: 5, kernelWidth: 0, padding: 'same' },
];
const started = runStart();
const out = a.out!;
const armDir = (arm: Arm) => join(out, arm.name.replace(/\s+/g, '-'));

/** The accuracy recipe's settings, all but the kernel and the length of the run. */
function armArgs(arm: Arm): string[] {
  return [
    'bench/accuracy.ts',
    '--train', a.train!, '--width', '0.125', '--kernel', String(arm.kernel), '--kernel-width', String(arm.kernelWidth), '--padding', arm.padding,
    '--lr', '0.003', '--batch', '8', '--dropout', '0', '--alpha', '0', '--pretrain', a.pretrain!, '--gru', a.gru!, '--patience', '60',
    '--precise-bn', '2000', '--lr-cosine', '2', '--budget-min', a['budget-min']!,
    '--out', armDir(arm), '--data-dir', join(out, 'data'), '--results', 'none',
  ];
}

function runArm(arm: Arm): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nice', ['-n', a.nice!, process.execPath, '--import', 'tsx', ...armArgs(arm)], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (b: Buffer) => {
      for (const line of b.toString().split('\n')) if (line.trim()) process.stdout.write(`[${arm.name}] ${line}\n`);
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`arm ${arm.name} exited with ${code}`))));
  });
}

interface Row { phase: string; epoch: number; cpu_min: number; wall_min: number; images_per_s: number; test_seq_acc?: number; test_char_acc?: number }

/** The epoch with the highest test sequence accuracy, or null when there is none. */
function bestOf(rows: Row[]): Row | null {
  return rows.reduce<Row | null>((b, r) => ((r.test_seq_acc ?? -1) > (b?.test_seq_acc ?? -1) ? r : b), null);
}

function summary(arm: Arm) {
  const file = join(armDir(arm), 'curve.json');
  const rows: Row[] = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { rows: Row[] }).rows : [];
  const best = bestOf(rows);
  // The fair comparison: the best of the epochs that ended inside the budget (an arm's last epoch may pass it).
  const inBudget = bestOf(rows.filter((r) => r.cpu_min <= Number(a['budget-min'])));
  const last = rows.at(-1);
  // Images trained per CPU second of the whole process (validation, test and precise BatchNorm
  // passes included): unlike images_per_s, not slowed by other load on the machine.
  const perCpuS = last ? (rows.length * Number(a.train)) / (last.cpu_min * 60) : 0;
  const macs = forwardMacs({ ...DEFAULT_PARAMS, width: 0.125, kernel_size: arm.kernel, kernel_width: arm.kernelWidth, padding: arm.padding, height: 60, imageWidth: 200, length: 6, classes: 36 });
  return { arm: arm.name, padding: arm.padding, mmacs: macs / 1e6, epochs: rows.length, cpuMin: last?.cpu_min ?? 0, imagesPerCpuS: perCpuS, best, inBudget, last, rows };
}

function page(status: string): void {
  const arms = ARMS.map(summary);
  const f4 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(4));
  writeResults({
    name: 'kernel-sizes',
    title: 'Kernel sizes under one CPU budget: 3x3, 3x5 and 5x5 (padding same)',
    ...started,
    status,
    markdown: [
      `The accuracy recipe (docs/accuracy.md) at width 0.125 on ${a.train} railway training images (seed 101), test 2,000 (seed 303), ` +
        `${a.pretrain} pretrain + ${a.gru} GRU epochs (lr 3e-3, half cosine over the GRU phase, batch 8, precise BatchNorm 2,000), ` +
        `each arm stopped at the first epoch end past **${a['budget-min']} CPU minutes** of its own process (one core, wasm). ` +
        'Test sequence accuracy is measured after every epoch; the best of each arm is shown, with the CPU minutes it had taken ' +
        '(an arm ends at an epoch end, so its last epoch may pass the budget). Training images per CPU second count every epoch\'s ' +
        'images against the process\'s CPU time, evaluation included.',
      '',
      markdownTable(
        ['kernel', 'padding', 'MMAC/image', 'training images per CPU s', 'epochs', 'CPU min', 'best test seq', 'at CPU min', 'test char there', 'best test seq within the budget', 'last test seq'],
        arms.map((s) => [s.arm, s.padding, s.mmacs.toFixed(0), s.imagesPerCpuS.toFixed(1), s.epochs, s.cpuMin.toFixed(1), f4(s.best?.test_seq_acc), s.best ? s.best.cpu_min.toFixed(1) : '-', f4(s.best?.test_char_acc), s.inBudget ? `${f4(s.inBudget.test_seq_acc)} (${s.inBudget.cpu_min.toFixed(1)} min)` : '-', f4(s.last?.test_seq_acc)]),
      ),
    ].join('\n'),
    data: { budgetCpuMin: Number(a['budget-min']), train: Number(a.train), pretrain: Number(a.pretrain), gru: Number(a.gru), arms },
  });
}

if (a['page-only']) {
  const done = ARMS.every((arm) => summary(arm).cpuMin >= Number(a['budget-min']));
  page(done ? 'complete (page rewritten from the arms\' curves)' : `partial: the arms' epochs so far (each stops at the first epoch end past ${a['budget-min']} CPU minutes)`);
  process.exit(0);
}
// Arms run `--parallel` at a time; the page is rewritten as each one ends.
const queue = [...ARMS];
const failures: string[] = [];
await Promise.all(
  Array.from({ length: Math.max(1, Number(a.parallel)) }, async () => {
    for (let arm = queue.shift(); arm; arm = queue.shift()) {
      try {
        await runArm(arm);
      } catch (err) {
        failures.push((err as Error).message);
      }
      page(queue.length > 0 ? 'in progress' : 'arms finishing');
    }
  }),
);
page(failures.length ? `incomplete: ${failures.join('; ')}` : 'complete');
for (const s of ARMS.map(summary)) console.log(`${s.arm.padEnd(9)} best test seq ${s.best?.test_seq_acc?.toFixed(4) ?? '-'} at ${s.best?.cpu_min.toFixed(1) ?? '-'} CPU min, ${s.inBudget?.test_seq_acc?.toFixed(4) ?? '-'} within ${a['budget-min']} (${s.epochs} epochs, ${s.imagesPerCpuS.toFixed(1)} training images per CPU s)`);
if (failures.length) process.exitCode = 1;
