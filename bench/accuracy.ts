/**
 * Test sequence accuracy against CPU minutes: railway-style CAPTCHAs, fixed seeds, a held-out
 * test set of 2,000 images evaluated after every epoch, one process (one core on wasm).
 *
 *   npx tsx bench/accuracy.ts [--train 30000] [--width 0.125] [--pretrain 8] [--gru 8] [--lr-decay 1] [--lr-cosine 0] [--precise-bn 0]
 *                             [--budget-min 120] [--backend auto] [--out bench/out/accuracy]
 *
 * Prints one row per epoch and writes bench/out/accuracy/curve.json (what a resumed run goes on
 * from) and bench/results/accuracy.md and .json, both after every epoch, so a run stopped early
 * still leaves its page. The CPU minutes are this
 * process's user+system time (process.cpuUsage), so other load on the machine does not count.
 * The budget stops training at the first epoch end past it. Run again with the same --out and
 * settings to go on: the trainer resumes from its last checkpoint and the curve continues from
 * the CPU and wall minutes already recorded in curve.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { generateDataset } from '../src/data/generate/index.ts';
import { toTrainSet } from '../src/data/trainset.ts';
import { initBackend, type BackendChoice } from '../src/train/backend.ts';
import { forwardMacs } from '../src/train/model.ts';
import { axisView, kernelDims, type Padding } from '../src/train/geometry.ts';
import { DEFAULT_PARAMS, resolveParams } from '../src/train/params.ts';
import { TrainingAborted, trainTrial, type EpochMetrics } from '../src/train/trainer.ts';
import { writeFileAtomic } from '../src/train/io.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    train: { type: 'string', default: '30000' },
    val: { type: 'string', default: '1000' },
    test: { type: 'string', default: '2000' },
    width: { type: 'string', default: '0.125' },
    kernel: { type: 'string', default: '3' },
    'kernel-width': { type: 'string', default: '0' },
    padding: { type: 'string', default: 'report' },
    batch: { type: 'string', default: '32' },
    lr: { type: 'string', default: '0.001' },
    'lr-decay': { type: 'string', default: '1' },
    'lr-cosine': { type: 'string', default: '0' },
    'precise-bn': { type: 'string', default: '0' },
    dropout: { type: 'string', default: '0.1' },
    alpha: { type: 'string', default: '0.00001' },
    pretrain: { type: 'string', default: '8' },
    gru: { type: 'string', default: '8' },
    patience: { type: 'string', default: '4' },
    'budget-min': { type: 'string', default: '120' },
    backend: { type: 'string', default: 'auto' },
    out: { type: 'string', default: 'bench/out/accuracy' },
    /** Where the generated datasets live (default OUT/data): runs side by side can share them. */
    'data-dir': { type: 'string' },
    /** The results page's name: bench/results/NAME.md and .json; `none` writes no page (a driver's arm). */
    results: { type: 'string', default: 'accuracy' },
  },
});

const started = runStart();
const out = a.out!;
async function dataset(name: string, count: number, seed: number) {
  const dir = join(a['data-dir'] ?? join(out, 'data'), `${name}-${count}-s${seed}`);
  if (!existsSync(join(dir, 'labels.csv'))) {
    process.stderr.write(`generating ${name}: ${count} railway images (seed ${seed})\n`);
    await generateDataset({ style: 'railway', count, seed, out: dir });
  }
  return loadDataset(dir, { spec: DEFAULT_LABEL_SPEC });
}

const train = await dataset('train', Number(a.train), 101);
const val = await dataset('val', Number(a.val), 202);
const test = await dataset('test', Number(a.test), 303);

const active = await initBackend(a.backend as BackendChoice, (m) => process.stderr.write(`${m}\n`));
const params = {
  ...DEFAULT_PARAMS,
  width: Number(a.width),
  kernel_size: Number(a.kernel),
  kernel_width: Number(a['kernel-width']),
  padding: a.padding as Padding,
  batch_size: Number(a.batch),
  lr: Number(a.lr),
  lr_decay: Number(a['lr-decay']),
  lr_cosine: Number(a['lr-cosine']),
  precise_bn: Number(a['precise-bn']),
  dropout: Number(a.dropout),
  alpha: Number(a.alpha),
  pretrain_epochs: Number(a.pretrain),
  gru_epochs: Number(a.gru),
  patience: Number(a.patience),
  seed: 1,
};
const budgetMin = Number(a['budget-min']);
const curveFile = join(out, 'curve.json');
const rows: Array<EpochMetrics & { cpu_min: number; wall_min: number }> = [];
const images = { train: train.items.length, val: val.items.length, test: test.items.length };
const runDir = join(out, `run-w${params.width}`);
if (existsSync(curveFile)) {
  const prior = JSON.parse(readFileSync(curveFile, 'utf8')) as { params: unknown; images?: unknown; backend?: string; rows: typeof rows };
  // a parameter added since the curve was written takes its default (the behaviour it ran with)
  if (JSON.stringify(resolveParams(prior.params as Record<string, unknown>, curveFile)) !== JSON.stringify(params) || (prior.images && JSON.stringify(prior.images) !== JSON.stringify(images))) {
    throw new Error(`${curveFile} was written with other settings or data; use another --out`);
  }
  if (prior.backend && prior.backend !== active.backend) throw new Error(`${curveFile} was measured on ${prior.backend}, this run is on ${active.backend}`);
  // The trainer writes its checkpoint before the curve gets the epoch's row: without the
  // checkpoint the trainer would start over; a kill between the two loses that one row.
  if (!existsSync(join(runDir, 'checkpoints', 'state.json'))) throw new Error(`${curveFile} exists but ${runDir} has no checkpoint to go on from`);
  rows.push(...prior.rows);
}
const last = rows.at(-1);
if (last && last.cpu_min >= budgetMin) {
  console.log(`# ${curveFile} already reached the budget of ${budgetMin} CPU minutes`);
  process.exit(0);
}
const cpu0 = process.cpuUsage();
const wall0 = performance.now() - (last?.wall_min ?? 0) * 60e3;
const cpuMinutes = () => {
  const u = process.cpuUsage(cpu0);
  return (last?.cpu_min ?? 0) + (u.user + u.system) / 60e6;
};
const machine = `${cpus()[0].model}, ${cpus().length} cores`;
const spec = { ...params, height: 60, imageWidth: 200, length: 6, classes: 36 };
const [kh, kw] = kernelDims(params);
const view = { h: axisView(spec.height, kh, params.padding), w: axisView(spec.imageWidth, kw, params.padding) };
console.log(`# accuracy: railway, train ${train.items.length} / val ${val.items.length} / test ${test.items.length}, width ${params.width}, kernel ${kernelDims(params).join('x')}, padding ${params.padding} ` +
  `(last map ${view.h.size}x${view.w.size}, receptive field ${view.h.field}x${view.w.field} px, columns centred at x = ${view.w.firstCentre}..${view.w.lastCentre}), ` +
  `${(forwardMacs(spec) / 1e6).toFixed(0)} MMAC/image forward, backend ${active.backend}, ${machine}`);
console.log('| phase | epoch | cpu min | wall min | train img/s | loss | val seq | val char by position | test char | test seq |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
const controller = new AbortController();
const save = () =>
  writeFileAtomic(curveFile, JSON.stringify({ machine, backend: active.backend, params, images, rows }, null, 1));
const f4 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(4));
/** The results page: every epoch so far (a resumed run's earlier epochs included). */
function page(status: string): void {
  if (a.results === 'none') return;
  const best = rows.reduce<(typeof rows)[number] | null>((b, r) => ((r.test_seq_acc ?? 0) > (b?.test_seq_acc ?? -1) ? r : b), null);
  writeResults({
    name: a.results!,
    title: 'Test sequence accuracy against CPU minutes',
    ...started,
    status,
    markdown: [
      `Railway CAPTCHAs: train ${images.train} / val ${images.val} / test ${images.test} images (seeds 101 / 202 / 303), width ${params.width}, kernel ${kernelDims(params).join('x')} (padding ${params.padding}), batch ${params.batch_size}, ` +
        `lr ${params.lr} (decay ${params.lr_decay}, cosine ${params.lr_cosine}), precise BatchNorm ${params.precise_bn}, dropout ${params.dropout}, alpha ${params.alpha}, ` +
        `up to ${params.pretrain_epochs} pretrain + ${params.gru_epochs} GRU epochs, budget ${budgetMin} CPU minutes; backend ${active.backend}, one process. ` +
        'CPU minutes are this process\'s user + system time, so other load on the machine does not count; wall minutes do.',
      '',
      best ? `Best test sequence accuracy so far: **${f4(best.test_seq_acc)}** (${best.phase} epoch ${best.epoch + 1}, ${best.cpu_min.toFixed(1)} CPU minutes).` : 'No epoch finished yet.',
      '',
      markdownTable(
        ['phase', 'epoch', 'cpu min', 'wall min', 'train img/s', 'loss', 'val seq', 'val char by position', 'test char', 'test seq'],
        rows.map((r) => [r.phase, r.epoch + 1, r.cpu_min.toFixed(1), r.wall_min.toFixed(1), r.images_per_s.toFixed(1), r.loss.toFixed(3), f4(r.val_seq_acc), r.val_char_acc_by_position.map((v) => v.toFixed(2)).join(' '), f4(r.test_char_acc), f4(r.test_seq_acc)]),
      ),
    ].join('\n'),
    data: { params, images, backend: active.backend, budgetCpuMin: budgetMin, rows },
  });
}
try {
  await trainTrial({
    params,
    backend: active.backend,
    data: { train: toTrainSet(train), val: toTrainSet(val), test: toTrainSet(test) },
    shape: { height: 60, width: 200, length: 6, classes: 36 },
    outDir: runDir,
    testEveryEpoch: true,
    signal: controller.signal,
    events: {
      epochEnd: (m) => {
        const row = { ...m, cpu_min: cpuMinutes(), wall_min: (performance.now() - wall0) / 60e3 };
        rows.push(row);
        save();
        page(`in progress: ${m.phase} epoch ${m.epoch + 1} done (up to ${params.pretrain_epochs} pretrain + ${params.gru_epochs} GRU epochs), ${row.cpu_min.toFixed(1)} of ${budgetMin} CPU minutes`);
        console.log(`| ${m.phase} | ${m.epoch + 1} | ${row.cpu_min.toFixed(1)} | ${row.wall_min.toFixed(1)} | ${m.images_per_s.toFixed(1)} | ` +
          `${m.loss.toFixed(3)} | ${m.val_seq_acc.toFixed(4)} | ${m.val_char_acc_by_position.map((v) => v.toFixed(2)).join(' ')} | ${m.test_char_acc!.toFixed(4)} | ${m.test_seq_acc!.toFixed(4)} |`);
        if (row.cpu_min >= budgetMin) controller.abort();
      },
    },
  });
  page('complete: every epoch ran (or early stopping ended a phase)');
} catch (err) {
  if (!(err instanceof TrainingAborted)) throw err;
  console.log(`# budget of ${budgetMin} CPU minutes reached`);
  page(`complete: the budget of ${budgetMin} CPU minutes was reached`);
}
const best = rows.reduce((b, r) => Math.max(b, r.test_seq_acc ?? 0), 0);
console.log(`# best test sequence accuracy ${best.toFixed(4)} after ${cpuMinutes().toFixed(1)} CPU minutes`);
