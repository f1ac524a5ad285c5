/**
 * How well a model reads CAPTCHAs of a look it never trained on: two arms trained with the same
 * settings and CPU budget, then scored on test sets of several looks.
 *
 *   plain         railway images as the generator draws them by default (lower case, serif + mono)
 *   robust        railway images in mixed case and five fonts, with augmentation (aug_* below)
 *   fonts14       railway images in mixed case and fourteen fonts, with the same augmentation from
 *                 the GRU phase on (aug_after 1: from the start, it stayed at chance for 22 CPU minutes)
 *   fonts14-noaug the same images without augmentation (the augmentation's share)
 *
 * Test sets (same labels, seed 303): railway; the robust arms' own looks; hard; railway in
 * upper case; railway in mixed case; railway in two fonts no arm trained on (open-sans,
 * roboto-slab).
 *
 *   npx tsx bench/robustness.ts --arm plain|robust|fonts14|fonts14-noaug [--train 10000] [--width 0.125] [--pretrain 1] [--gru 5]
 *                               [--budget-min 15] [--test 1000] [--out bench/out/robustness]
 *
 * Run the two arms as two processes (side by side, one core each). Each trains (resuming from
 * its checkpoints when run again), stops at the first epoch end past --budget-min CPU minutes
 * (this process's user + system time, decode threads included, so augmentation is paid from the
 * budget), scores its kept model on every test set, and writes out/<arm>.json; then the page
 * bench/results/robustness.md and .json is written from every arm finished so far. Arms of the
 * same look share their generated data: start the second once the first has written it.
 * `--seed-from FILE` first copies the arms of an earlier results JSON into --out (their models are
 * not kept, so they have no score on a look added since: the page shows a dash there).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { generateDataset, type CaptchaStyle, type FontName, type LetterCase } from '../src/data/generate/index.ts';
import { toTrainSet } from '../src/data/trainset.ts';
import { evaluateReader } from '../src/ensemble/evaluate.ts';
import { loadReader } from '../src/ensemble/reader.ts';
import { initBackend, type BackendChoice } from '../src/train/backend.ts';
import { DEFAULT_PARAMS, type TrainParams } from '../src/train/params.ts';
import { TrainingAborted, trainTrial, type EpochMetrics } from '../src/train/trainer.ts';
import { writeFileAtomic } from '../src/train/io.ts';
import { commandLine, markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    arm: { type: 'string', default: 'plain' },
    train: { type: 'string', default: '10000' },
    val: { type: 'string', default: '500' },
    test: { type: 'string', default: '1000' },
    width: { type: 'string', default: '0.125' },
    pretrain: { type: 'string', default: '1' },
    gru: { type: 'string', default: '5' },
    'precise-bn': { type: 'string', default: '500' },
    'budget-min': { type: 'string', default: '15' },
    backend: { type: 'string', default: 'auto' },
    out: { type: 'string', default: 'bench/out/robustness' },
    /** Only rewrite the results page from the arms already finished. */
    page: { type: 'boolean', default: false },
    'seed-from': { type: 'string' },
  },
});

interface Look {
  style: CaptchaStyle;
  letterCase?: LetterCase;
  fonts?: FontName[];
}
const TRAINED_FONTS: FontName[] = ['serif', 'mono', 'sans', 'noto-serif', 'plex-mono'];
/** Three serifs, three sans, two monospace faces and a slab serif more: still no Open Sans or Roboto Slab. */
const MORE_FONTS: FontName[] = [...TRAINED_FONTS, 'merriweather', 'pt-serif', 'libre-baskerville', 'lato', 'ubuntu', 'montserrat', 'source-code-pro', 'fira-mono', 'zilla-slab'];
const UNSEEN_FONTS: FontName[] = ['open-sans', 'roboto-slab'];
/** The robust arm's augmentation: small, like the jitter between real renderers. */
const AUGMENT = { aug_rotate: 6, aug_shear: 0.15, aug_scale: 0.08, aug_shift: 3, aug_contrast: 0.25, aug_color: 0.15, aug_noise: 0.03, aug_jpeg: 0.3 };

const ROBUST_LOOK = 'robust look (mixed, 5 fonts)';
const FONTS14_LOOK = 'fonts14 look (mixed, 14 fonts)';
/** `own`: the test set of the arm's own look, the base its losses are measured from. */
const ARMS = {
  plain: { look: { style: 'railway' } as Look, augment: {}, own: 'railway' },
  robust: { look: { style: 'railway', letterCase: 'mixed', fonts: TRAINED_FONTS } as Look, augment: AUGMENT, own: ROBUST_LOOK },
  fonts14: { look: { style: 'railway', letterCase: 'mixed', fonts: MORE_FONTS } as Look, augment: { ...AUGMENT, aug_after: 1 }, own: FONTS14_LOOK },
  'fonts14-noaug': { look: { style: 'railway', letterCase: 'mixed', fonts: MORE_FONTS } as Look, augment: {}, own: FONTS14_LOOK },
} as const;
type ArmName = keyof typeof ARMS;
const ARM_NAMES = Object.keys(ARMS) as ArmName[];

/** `unseen`: the arms that never trained on anything of this look (the goal's measure). */
const TESTS: Array<{ name: string; look: Look; unseen: ArmName[] }> = [
  { name: 'railway', look: { style: 'railway' }, unseen: [] },
  { name: ROBUST_LOOK, look: ARMS.robust.look, unseen: [] },
  { name: FONTS14_LOOK, look: ARMS.fonts14.look, unseen: [] },
  { name: 'hard', look: { style: 'hard' }, unseen: ARM_NAMES },
  // the other arms' mixed case holds capitals, but no image of capitals only
  { name: 'railway --case upper', look: { style: 'railway', letterCase: 'upper' }, unseen: ['plain'] },
  { name: 'railway --case mixed', look: { style: 'railway', letterCase: 'mixed' }, unseen: ['plain'] },
  { name: `railway --fonts ${UNSEEN_FONTS.join(',')}`, look: { style: 'railway', fonts: UNSEEN_FONTS }, unseen: ARM_NAMES },
];

const out = a.out!;
const lookName = (l: Look) => [l.style, l.letterCase ?? 'lower', ...(l.fonts ? [l.fonts.join('+')] : [])].join('-');
async function dataset(look: Look, count: number, seed: number): Promise<string> {
  const dir = join(out, 'data', `${lookName(look)}-${count}-s${seed}`);
  if (!existsSync(join(dir, 'labels.csv'))) {
    process.stderr.write(`generating ${dir}\n`);
    await generateDataset({ style: look.style, letterCase: look.letterCase, fonts: look.fonts, count, seed, out: dir, force: true });
  }
  return dir;
}

interface ArmResult {
  arm: ArmName;
  command: string;
  budget_min: number;
  images: { train: number; val: number; test: number };
  params: TrainParams;
  look: Look;
  backend: string;
  cpu_min: number;
  wall_min: number;
  epochs: Array<Pick<EpochMetrics, 'phase' | 'epoch' | 'loss' | 'val_seq_acc' | 'images_per_s'> & { cpu_min: number }>;
  kept: { phase: string; epoch: number; val_seq_acc: number };
  tests: Array<{ name: string; seq_acc: number; char_acc: number; images: number }>;
}

async function trainArm(arm: ArmName): Promise<ArmResult> {
  const { look, augment } = ARMS[arm];
  const count = Number(a.train);
  const train = await loadDataset(await dataset(look, count, 101), { spec: DEFAULT_LABEL_SPEC });
  const val = await loadDataset(await dataset(look, Number(a.val), 202), { spec: DEFAULT_LABEL_SPEC });
  const active = await initBackend(a.backend as BackendChoice, (m) => process.stderr.write(`${m}\n`));
  // The accuracy recipe (docs/accuracy.md) at a small budget.
  const params: TrainParams = {
    ...DEFAULT_PARAMS, width: Number(a.width), kernel_size: 3, kernel_width: 5, lr: 0.003, batch_size: 8, dropout: 0, alpha: 0,
    pretrain_epochs: Number(a.pretrain), gru_epochs: Number(a.gru), patience: 60, precise_bn: Number(a['precise-bn']), lr_cosine: 2, seed: 1, ...augment,
  };
  const budget = Number(a['budget-min']);
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const cpuMin = () => {
    const u = process.cpuUsage(cpu0);
    return (u.user + u.system) / 60e6;
  };
  const epochs: ArmResult['epochs'] = [];
  const controller = new AbortController();
  let modelDir: string;
  try {
    const result = await trainTrial({
      params, backend: active.backend, data: { train: toTrainSet(train), val: toTrainSet(val) },
      shape: { height: 60, width: 200, length: 6, classes: 36 }, outDir: join(out, arm), signal: controller.signal,
      events: {
        epochEnd: (m) => {
          epochs.push({ phase: m.phase, epoch: m.epoch, loss: m.loss, val_seq_acc: m.val_seq_acc, images_per_s: m.images_per_s, cpu_min: cpuMin() });
          console.log(`${arm}: ${m.phase} epoch ${m.epoch + 1}, ${cpuMin().toFixed(1)} CPU min, ${m.images_per_s.toFixed(1)} img/s, loss ${m.loss.toFixed(3)}, val seq ${m.val_seq_acc.toFixed(4)}`);
          if (cpuMin() >= budget) controller.abort();
        },
      },
    });
    modelDir = result.model_dir;
  } catch (err) {
    if (!(err instanceof TrainingAborted)) throw err;
    console.log(`${arm}: budget of ${budget} CPU minutes reached after ${err.phase} epoch ${err.epoch + 1}`);
    modelDir = keptCheckpoint(arm);
  }
  const cpu = cpuMin();
  const wall = (performance.now() - wall0) / 60e3;
  const state = JSON.parse(readFileSync(join(out, arm, 'checkpoints', 'state.json'), 'utf8')) as { best: Record<string, { epoch: number; val_seq_acc: number } | undefined> };
  const kept = state.best.gru ? { phase: 'gru', ...state.best.gru } : { phase: 'pretrain', ...state.best.pretrain! };
  const reader = await loadReader(modelDir, { backend: a.backend as BackendChoice });
  const tests: ArmResult['tests'] = [];
  try {
    for (const t of TESTS) {
      const r = await evaluateReader(reader, await dataset(t.look, Number(a.test), 303), { batch: 32 });
      tests.push({ name: t.name, seq_acc: r.seq_acc, char_acc: r.char_acc, images: r.images });
      console.log(`${arm}: ${t.name}: seq ${r.seq_acc.toFixed(4)}, char ${r.char_acc.toFixed(4)}`);
    }
  } finally {
    reader.dispose();
  }
  return { arm, command: commandLine(), budget_min: budget, images: { train: count, val: Number(a.val), test: Number(a.test) }, params, look, backend: active.backend, cpu_min: cpu, wall_min: wall, epochs, kept: { phase: kept.phase, epoch: kept.epoch, val_seq_acc: kept.val_seq_acc }, tests };
}

/** The checkpoint of a trial stopped by the budget that the trainer keeps (its best GRU epoch, else pretrain). */
function keptCheckpoint(arm: ArmName): string {
  const state = JSON.parse(readFileSync(join(out, arm, 'checkpoints', 'state.json'), 'utf8')) as { best: Record<string, { dir: string } | undefined> };
  const best = state.best.gru ?? state.best.pretrain;
  if (!best) throw new Error(`${arm}: no epoch was kept`);
  return join(out, arm, 'checkpoints', best.dir);
}

const started = runStart();
const arm = a.arm as ArmName;
if (!(arm in ARMS)) throw new Error(`--arm: expected ${ARM_NAMES.join(', ')}, got ${a.arm}`);
if (a['seed-from']) {
  const earlier = JSON.parse(readFileSync(a['seed-from'], 'utf8')) as { data: { arms: ArmResult[] } };
  for (const r of earlier.data.arms) {
    const file = join(out, `${r.arm}.json`);
    if (!existsSync(file)) writeFileAtomic(file, JSON.stringify(r, null, 1));
  }
}
if (!a.page) writeFileAtomic(join(out, `${arm}.json`), JSON.stringify(await trainArm(arm), null, 1));

const done = ARM_NAMES.map((n) => join(out, `${n}.json`)).filter(existsSync).map((f) => JSON.parse(readFileSync(f, 'utf8')) as ArmResult);
const f4 = (x: number) => x.toFixed(4);
const test = (r: ArmResult, name: string) => r.tests.find((x) => x.name === name);
/** Points of accuracy the arm loses on test set `name` against its own look (undefined: not scored there). */
const lossPts = (r: ArmResult, name: string, key: 'seq_acc' | 'char_acc') => {
  const own = test(r, ARMS[r.arm].own);
  const x = test(r, name);
  return own && x ? (own[key] - x[key]) * 100 : undefined;
};
const pts = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(1));
/** A cell: the accuracy and, in brackets, the points lost against the arm's own look (* never trained on). */
const cell = (r: ArmResult, t: (typeof TESTS)[number], key: 'seq_acc' | 'char_acc') => {
  const x = test(r, t.name);
  if (!x) return '—';
  return `${f4(x[key])} (${pts(lossPts(r, t.name, key))}${t.unseen.includes(r.arm) ? '*' : ''})`;
};
const look = (l: Look) => `${l.style} in ${l.letterCase ?? 'lower'} case, fonts ${l.fonts ? l.fonts.join(', ') : 'serif, mono (the default)'}`;
writeResults({
  name: 'robustness',
  title: 'Sequence accuracy on looks a model never trained on',
  ...started,
  status: (done.length === ARM_NAMES.length ? 'complete: every arm' : `partial: ${done.map((r) => r.arm).join(', ')} only`) + (a.page ? ' (page rewritten with --page; each arm\'s command and minutes below)' : ''),
  markdown: [
    `${done.length} arms, the same settings and CPU budget: **${done.map((r) => r.budget_min).join(' / ')} CPU minutes**${done.some((r) => r.budget_min < 60) ? ' (under 60 is a small budget: the accuracy recipe needs about 70 for 0.97)' : ''}, ` +
      `${done[0].images.train} training images, width ${done[0].params.width}, kernel 3x5, batch 8, lr 0.003 with a half cosine over the GRU phase, ` +
      `up to ${done[0].params.pretrain_epochs} pretrain + ${done[0].params.gru_epochs} GRU epochs, precise_bn ${done[0].params.precise_bn}; ` +
      `test sets of ${done[0].images.test} images (seed 303). Augmentation, where an arm has it: ${Object.entries(AUGMENT).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    ...done.map((r) => `- ${r.arm}: ${look(r.look)}; ${!Object.keys(ARMS[r.arm].augment).length ? 'no augmentation' : r.params.aug_after ? `augmentation after ${r.params.aug_after} clean epoch(s) (aug_after ${r.params.aug_after})` : 'augmentation from the start'}.`),
    '',
    'Each cell: accuracy (points lost against the arm\'s own look; seq: sequence accuracy, the goal\'s measure; char: character accuracy). ' +
      '* marks a look the arm never trained on (a mixed-case arm has seen capitals, so all-capital images are not counted as unseen for it). ' +
      '— : not scored (an arm from an earlier run whose model was not kept, on a look added since).',
    '',
    markdownTable(
      ['test set', ...done.flatMap((r) => [`${r.arm} seq`, `${r.arm} char`])],
      TESTS.map((t) => [t.name, ...done.flatMap((r) => [cell(r, t, 'seq_acc'), cell(r, t, 'char_acc')])]),
    ),
    '',
    ...done.map((r) => {
      const losses = TESTS.filter((t) => t.unseen.includes(r.arm)).map((t) => ({ name: t.name, pts: lossPts(r, t.name, 'seq_acc') }));
      return `Goal (at most 5 points of sequence accuracy lost on a look never trained on), ${r.arm}: ` +
        losses.map((l) => `${l.name} ${pts(l.pts)} (${l.pts === undefined ? 'not scored' : l.pts <= 5 ? 'met' : 'not met'})`).join('; ') + '.';
    }),
    '',
    ...done.map((r) => `${r.arm} (\`${r.command}\`): ${r.cpu_min.toFixed(1)} CPU min, ${r.wall_min.toFixed(1)} wall min, backend ${r.backend}, kept ${r.kept.phase} epoch ${r.kept.epoch + 1} (val seq ${f4(r.kept.val_seq_acc)}); ` +
      `epochs: ${r.epochs.map((e) => `${e.phase[0]}${e.epoch + 1} ${e.cpu_min.toFixed(1)} min ${e.images_per_s.toFixed(0)} img/s val ${f4(e.val_seq_acc)}`).join('; ')}`),
  ].join('\n'),
  data: { arms: done, tests: TESTS, augment: AUGMENT },
});
