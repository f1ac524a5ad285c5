/**
 * Training and inference images/s per available backend and width, through the real trainer
 * (data decoded from PNG files, prefetched, gradients accumulated), and the model's FLOPs per
 * image so the fraction of the CPU's peak is visible.
 *
 *   npx tsx bench/train-throughput.ts [--backends wasm,cpu] [--widths 0.25,1] [--images 256]
 *                                     [--procs 1,2] [--json]
 *
 * --procs 2 also runs two processes at once (one per core, as `sweep worker` is meant to be
 * run) and reports their summed training rate. The peak assumes AVX2 FMA: 32 float32 FLOPs
 * per cycle per core at the clock /proc/cpuinfo reports. The table goes to
 * bench/results/train-throughput.md and .json.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { generateDataset } from '../src/data/generate/index.ts';
import { toTrainSet } from '../src/data/trainset.ts';
import { initBackend, type BackendChoice } from '../src/train/backend.ts';
import { buildGruModel, forwardMacs, type ModelSpec } from '../src/train/model.ts';
import { DEFAULT_PARAMS } from '../src/train/params.ts';
import * as tf from '../src/train/tf.ts';
import { microBatchFor, trainTrial, type EpochMetrics } from '../src/train/trainer.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    backends: { type: 'string', default: 'wasm' },
    widths: { type: 'string', default: '0.25,1' },
    images: { type: 'string', default: '256' },
    batch: { type: 'string', default: '32' },
    procs: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    child: { type: 'string' }, // internal: one measurement, JSON on stdout
  },
});

const DATA = 'bench/out/throughput-data';
const spec = DEFAULT_LABEL_SPEC;

interface Row {
  backend: string;
  width: number;
  batch: number;
  micro_batch: number;
  procs: number;
  train_img_s: number;
  infer_img_s: number;
  gflop_per_img_train: number;
  peak_fraction: number;
}

function clockGHz(): number {
  try {
    const mhz = readFileSync('/proc/cpuinfo', 'utf8').match(/cpu MHz\s*:\s*([\d.]+)/);
    if (mhz) return Number(mhz[1]) / 1000;
  } catch {
    /* not Linux */
  }
  return cpus()[0].speed / 1000;
}

async function dataset(count: number) {
  const dir = join(DATA, `railway-${count}`);
  if (!existsSync(join(dir, 'labels.csv'))) await generateDataset({ style: 'railway', count, seed: 99, out: dir });
  return loadDataset(dir, { spec });
}

/** One measurement in this process: one training epoch through the trainer, then inference. */
async function measure(backendChoice: string, width: number, images: number, batch: number): Promise<Row> {
  const active = await initBackend(backendChoice as BackendChoice);
  const ds = await dataset(images);
  const params = { ...DEFAULT_PARAMS, width, batch_size: batch, pretrain_epochs: 0, gru_epochs: 1, seed: 1 };
  const out = mkdtempSync(join(tmpdir(), 'sweep-throughput-'));
  let epoch: EpochMetrics | undefined;
  const small = toTrainSet({ ...ds, items: ds.items.slice(0, batch) });
  await trainTrial({
    params,
    backend: active.backend,
    data: { train: toTrainSet(ds), val: small },
    shape: { height: 60, width: 200, length: 6, classes: 36 },
    outDir: out,
    events: { epochEnd: (m) => void (epoch = m) },
  });
  rmSync(out, { recursive: true, force: true });

  const modelSpec: ModelSpec = { ...params, height: 60, imageWidth: 200, length: 6, classes: 36 };
  const model = buildGruModel(modelSpec);
  const micro = microBatchFor(params, active.backend);
  const x = tf.randomUniform([micro, 60, 200, 3]);
  tf.dispose(model.predict(x) as tf.Tensor[]); // warm-up
  const reps = Math.max(2, Math.ceil(64 / micro));
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) {
    const out = model.predict(x) as tf.Tensor[];
    await out[0].data();
    tf.dispose(out);
  }
  const infer = (reps * micro) / ((performance.now() - t0) / 1000);
  x.dispose();
  model.dispose();
  // A training step is about 3x the forward pass (forward, input gradients, weight gradients).
  const trainFlops = 3 * 2 * forwardMacs(modelSpec);
  const peak = 32 * clockGHz() * 1e9;
  return {
    backend: active.backend,
    width,
    batch,
    micro_batch: micro,
    procs: 1,
    train_img_s: epoch!.images_per_s,
    infer_img_s: infer,
    gflop_per_img_train: trainFlops / 1e9,
    peak_fraction: (epoch!.images_per_s * trainFlops) / peak,
  };
}

function child(args: string): Promise<Row> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, process.argv[1], '--child', args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`child exited ${code}`))));
  });
}

if (a.child) {
  const [backend, width, images, batch] = a.child.split(':');
  const row = await measure(backend, Number(width), Number(images), Number(batch));
  process.stdout.write(`${JSON.stringify(row)}\n`);
  process.exit(0);
}

const started = runStart();
const images = Number(a.images);
await dataset(images); // generate once, before processes race for it
const rows: Row[] = [];
for (const backend of a.backends!.split(',')) {
  for (const width of a.widths!.split(',').map(Number)) {
    for (const procs of a.procs!.split(',').map(Number)) {
      // Full width trains at about 1 image/s on one core: fewer images keep the bench short.
      const n = width >= 1 ? Math.min(images, 64) : images;
      const arg = `${backend}:${width}:${n}:${a.batch}`;
      const results = await Promise.all(Array.from({ length: procs }, () => child(arg)));
      rows.push({
        ...results[0],
        procs,
        train_img_s: results.reduce((s, r) => s + r.train_img_s, 0),
        infer_img_s: results.reduce((s, r) => s + r.infer_img_s, 0),
        peak_fraction: results.reduce((s, r) => s + r.peak_fraction, 0) / procs,
      });
      process.stderr.write(`done: ${arg} x${procs}\n`);
    }
  }
}

const machine = `${cpus()[0].model}, ${cpus().length} cores, ${clockGHz().toFixed(2)} GHz`;
const header = ['backend', 'width', 'batch (micro)', 'processes', 'train img/s', 'inference img/s', 'train GFLOP/img', '% of peak per core'];
const cells = (r: Row) => [
  r.backend,
  r.width,
  `${r.batch} (${r.micro_batch})`,
  r.procs,
  r.train_img_s.toFixed(2),
  r.infer_img_s.toFixed(1),
  r.gflop_per_img_train.toFixed(2),
  `${(100 * r.peak_fraction).toFixed(1)}%`,
];
writeResults({
  name: 'train-throughput',
  title: 'Training and inference images/s through the real trainer',
  ...started,
  markdown: [
    `One training epoch of ${images} generated railway images per row (at most 64 at width 1) through trainTrial (PNG decoding, prefetch, gradient accumulation), then inference on random input; each measurement in a process of its own. ` +
      `Wall-clock rates: on a busy machine they fall with its load. Peak assumes AVX2 FMA, 32 float32 FLOPs per cycle per core at ${clockGHz().toFixed(2)} GHz (/proc/cpuinfo); a training step is counted as 3x the forward pass.`,
    '',
    markdownTable(header, rows.map(cells)),
  ].join('\n'),
  data: { images, batch: Number(a.batch), clockGHz: clockGHz(), rows },
});
if (a.json) {
  process.stdout.write(`${JSON.stringify({ machine, rows }, null, 2)}\n`);
} else {
  console.log(`# train-throughput on ${machine}`);
  console.log(markdownTable(header, rows.map(cells)).replace(/ --- /g, '---'));
}
