/**
 * Data pipeline throughput: decode only (sharp vs canvas), decode -> float32 batches of 32
 * (worker threads vs in-process), dataset loading, and how much of the pipeline a blocking
 * train step hides.
 *
 *   npx tsx bench/pipeline.ts [--dir D]... [--count 2000] [--repeats 3]
 *
 * Without --dir it makes (once, then reuses) 2000 PNG and 2000 JPEG 200x60 CAPTCHA-like
 * images (~15 KB and ~5 KB) under the temp directory. Each --dir D adds D/png and D/jpg if
 * they exist, else D as one dataset (labels.csv or file names), e.g. `sweep data generate`.
 *
 * Each configuration runs in a child process, because libuv's threadpool size is fixed when the
 * pool first starts:
 *   1 thread   one decode thread: BatchStream threads=1 (one worker); in-process rows with
 *              UV_THREADPOOL_SIZE=1 and sharp.concurrency(1). The main thread comes on top.
 *   all cores  BatchStream threads = cores; in-process rows with libuv's default 4 threads and
 *              sharp's default concurrency.
 * "img/cpu-s" divides images by the CPU time of the whole process (all threads): the honest
 * per-core figure. "main us/img" is the main thread's own CPU time (Linux /proc), what a train
 * step on the main thread competes with. The machine may be shared: the table shows the best
 * and the median of --repeats runs, and the load average at the start. The table goes to
 * bench/results/pipeline.md and .json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCanvas, Image } from '@napi-rs/canvas';
import sharp from 'sharp';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset, type Dataset } from '../src/data/dataset.ts';
import { BatchStream } from '../src/data/batches.ts';
import { closeDecodePools } from '../src/data/decode-pool.ts';
import type { Decoder } from '../src/data/decoders.ts';
import { Rng } from '../src/util/rng.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const WIDTH = 200;
const HEIGHT = 60;
const BATCH = 32;

interface Args {
  dirs: string[];
  count: number;
  repeats: number;
  child?: string;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { dirs: [], count: 2000, repeats: 3 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === '--dir') args.dirs.push(v), i++;
    else if (argv[i] === '--count') (args.count = Number(v)), i++;
    else if (argv[i] === '--repeats') (args.repeats = Number(v)), i++;
    else if (argv[i] === '--child') (args.child = v), i++;
    else throw new Error(`unknown argument ${argv[i]}; usage: npx tsx bench/pipeline.ts [--dir D] [--count N] [--repeats R]`);
  }
  return args;
}

// ---------------------------------------------------------------------------------------------
// Data

/** Noisy background, six characters, a few lines: PNGs of ~10-20 KB. */
function makeImages(dir: string, count: number): void {
  const rng = new Rng('bench-pipeline');
  const charset = DEFAULT_LABEL_SPEC.charset;
  for (const sub of ['png', 'jpg']) mkdirSync(path.join(dir, sub), { recursive: true });
  const canvas = createCanvas(WIDTH, HEIGHT);
  const g = canvas.getContext('2d');
  for (let i = 0; i < count; i++) {
    g.globalCompositeOperation = 'source-over';
    g.fillStyle = `rgb(${rng.int(200, 255)},${rng.int(200, 255)},${rng.int(200, 255)})`;
    g.fillRect(0, 0, WIDTH, HEIGHT);
    const img = g.getImageData(0, 0, WIDTH, HEIGHT);
    for (let p = 0; p < img.data.length; p += 4) {
      const n = rng.int(-5, 5);
      img.data[p] += n;
      img.data[p + 1] += n;
      img.data[p + 2] += n;
    }
    g.putImageData(img, 0, 0);
    let label = '';
    for (let k = 0; k < 6; k++) label += rng.pick([...charset]);
    g.font = `${rng.int(30, 40)}px sans-serif`;
    g.fillStyle = `rgb(${rng.int(0, 90)},${rng.int(0, 90)},${rng.int(0, 90)})`;
    g.fillText(label, rng.int(5, 30), rng.int(40, 50));
    for (let k = 0; k < 4; k++) {
      g.beginPath();
      g.moveTo(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT));
      g.lineTo(rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT));
      g.stroke();
    }
    writeFileSync(path.join(dir, 'png', `${label}_${i}.png`), canvas.toBuffer('image/png'));
    writeFileSync(path.join(dir, 'jpg', `${label}_${i}.jpg`), canvas.toBuffer('image/jpeg', 90));
  }
  writeFileSync(path.join(dir, 'complete'), String(count));
}

function datasetDirs(args: Args): { name: string; dir: string }[] {
  if (args.dirs.length) {
    return args.dirs.flatMap((dir) => {
      const subs = ['png', 'jpg'].filter((s) => existsSync(path.join(dir, s)));
      if (subs.length) return subs.map((s) => ({ name: s.toUpperCase(), dir: path.join(dir, s) }));
      return [{ name: path.basename(dir), dir }];
    });
  }
  const dir = path.join(os.tmpdir(), `sweep-bench-pipeline-v2-${args.count}`);
  const marker = path.join(dir, 'complete');
  if (!existsSync(marker) || readFileSync(marker, 'utf8') !== String(args.count)) {
    process.stderr.write(`making ${args.count} PNG + ${args.count} JPEG images in ${dir} ...\n`);
    makeImages(dir, args.count);
  }
  return [
    { name: 'PNG', dir: path.join(dir, 'png') },
    { name: 'JPEG', dir: path.join(dir, 'jpg') },
  ];
}

// ---------------------------------------------------------------------------------------------
// Measurements (in the child)

interface Sample {
  images: number;
  wallMs: number;
  cpuMs: number;
  /** CPU time of the main thread alone; NaN where /proc is missing. */
  mainMs: number;
}

/** The main thread's CPU time in ms, from /proc (clock ticks, usually 10 ms). */
function mainThreadCpuMs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

async function measure(images: number, run: () => Promise<void>): Promise<Sample> {
  const m0 = mainThreadCpuMs();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await run();
  const wallMs = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { images, wallMs, cpuMs: (c.user + c.system) / 1000, mainMs: mainThreadCpuMs() - m0 };
}

/** Runs `fn` on every buffer with `inFlight` calls outstanding. */
async function pool(bufs: Buffer[], inFlight: number, fn: (b: Buffer) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < bufs.length) await fn(bufs[next++]);
    }),
  );
}

const ctx = createCanvas(WIDTH, HEIGHT).getContext('2d');
ctx.globalCompositeOperation = 'copy';
const decoders = {
  sharp: (b: Buffer) => sharp(b, { ignoreIcc: true }).removeAlpha().raw().toBuffer(),
  canvas: async (b: Buffer) => {
    const img = new Image();
    img.src = b;
    await img.decode();
    ctx.drawImage(img, 0, 0);
    return ctx.getImageData(0, 0, img.width, img.height).data;
  },
};

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

interface Pipeline {
  label: string;
  decoder: Decoder;
  threads: number;
}

async function epoch(ds: Dataset, p: Pipeline, stepMs = 0): Promise<void> {
  for await (const b of new BatchStream(ds, { batchSize: BATCH, seed: 1, decoder: p.decoder, threads: p.threads })) {
    if (stepMs) busyWait(stepMs);
    if (b.n === 0) throw new Error('empty batch');
  }
}

interface Row {
  name: string;
  samples: Sample[];
  overlap?: { stepsMs: number; aloneMs: number; batches: number };
}

async function child(mode: string, args: Args): Promise<void> {
  const perCore = mode === 'per-core';
  if (perCore) sharp.concurrency(1);
  const workers = perCore ? 1 : os.cpus().length;
  const pipelines: Pipeline[] = [
    { label: `${workers} decode worker${workers > 1 ? 's' : ''}`, decoder: 'canvas', threads: workers },
    { label: 'in-process canvas', decoder: 'canvas', threads: 0 },
    { label: 'in-process sharp', decoder: 'sharp', threads: 0 },
  ];
  const rows: Row[] = [];
  const repeat = async (name: string, images: number, run: () => Promise<void>) => {
    await run(); // warm-up: code, native libraries, page cache, worker start
    const samples: Sample[] = [];
    for (let r = 0; r < args.repeats; r++) samples.push(await measure(images, run));
    rows.push({ name, samples });
    return rows[rows.length - 1];
  };
  const spec = DEFAULT_LABEL_SPEC;
  for (const { name, dir } of datasetDirs(args)) {
    const ds = await loadDataset(dir, { spec, skipBad: true });
    const bufs = ds.items.map((i) => ds.cache!.get(path.join(dir, i.file))!);
    const kb = bufs.reduce((s, b) => s + b.length, 0) / bufs.length / 1024;
    const tag = `${name} (${bufs.length}, ${kb.toFixed(0)} KB)`;
    for (const d of ['sharp', 'canvas'] as const) {
      await repeat(`${tag}: decode only, ${d}`, bufs.length, () => pool(bufs, 64, decoders[d]));
    }
    for (const verify of ['fast', 'full'] as const) {
      await repeat(`${tag}: loadDataset verify=${verify}`, bufs.length, async () => {
        await loadDataset(dir, { spec, skipBad: true, verify });
      });
    }
    const alone = new Map<Pipeline, number>();
    for (const p of pipelines) {
      const row = await repeat(`${tag}: float batches of ${BATCH}, ${p.label}`, ds.items.length, () => epoch(ds, p));
      alone.set(p, Math.min(...row.samples.map((s) => s.wallMs)));
    }
    // A train step that blocks the main thread for twice as long as the pipeline alone needs per
    // batch: with full overlap the epoch takes just the steps; what it takes beyond them is the
    // pipeline work the steps did not hide.
    const batches = Math.ceil(ds.items.length / BATCH);
    for (const p of pipelines.slice(0, 2)) {
      for (const [what, set] of [['cached', ds], ['from disk', { ...ds, cache: null }]] as const) {
        const aloneMs = alone.get(p)!;
        const stepMs = (2 * aloneMs) / batches;
        const row = await repeat(`${tag}: ${p.label}, ${what}, ${stepMs.toFixed(1)} ms blocking steps`, ds.items.length, () => epoch(set, p, stepMs));
        row.overlap = { stepsMs: batches * stepMs, aloneMs, batches };
      }
    }
  }
  await closeDecodePools();
  process.stdout.write(JSON.stringify({ mode, workers, sharpConcurrency: sharp.concurrency(), rows }));
}

// ---------------------------------------------------------------------------------------------
// Parent: run the children, print the table

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return child(args.child, args);
  const started = runStart();
  datasetDirs(args); // make the images once, before the children time anything
  const self = fileURLToPath(import.meta.url);
  const load = os.loadavg()[0];
  const results = [];
  for (const mode of ['per-core', 'default']) {
    const env = { ...process.env };
    if (mode === 'per-core') env.UV_THREADPOOL_SIZE = '1';
    else delete env.UV_THREADPOOL_SIZE;
    const pass = [...args.dirs.flatMap((d) => ['--dir', d]), '--count', String(args.count), '--repeats', String(args.repeats)];
    process.stderr.write(`running ${mode} ...\n`);
    const r = spawnSync(process.execPath, [...process.execArgv, self, '--child', mode, ...pass], {
      env,
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    if (r.status !== 0) throw new Error(`${mode} child failed:\n${r.stderr}`);
    results.push(JSON.parse(r.stdout));
  }

  const cpus = os.cpus();
  console.log(`machine: ${cpus[0]?.model ?? 'unknown'}, ${cpus.length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}; ` +
    `sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}); @napi-rs/canvas; load average at start ${load.toFixed(2)}`);
  console.log(`images ${WIDTH}x${HEIGHT}; best and median of ${args.repeats} runs after a warm-up; img/cpu-s = images / process CPU time (all threads); main = main thread CPU\n`);
  const head = ['threads', 'measurement', 'img/s best', 'img/s median', 'img/cpu-s', 'main us/img'];
  const table: string[][] = [];
  for (const res of results) {
    const threads = res.mode === 'per-core' ? '1 thread' : `all cores (${res.workers} workers, libuv 4, sharp ${res.sharpConcurrency})`;
    for (const row of res.rows as Row[]) {
      const rates = row.samples.map((s) => (s.images / s.wallMs) * 1000).sort((a, b) => a - b);
      const best = row.samples.reduce((a, b) => (a.wallMs < b.wallMs ? a : b));
      let name = row.name;
      let cpu = [((best.images / best.cpuMs) * 1000).toFixed(0), ((best.mainMs / best.images) * 1000).toFixed(0)];
      if (row.overlap) {
        const { stepsMs, aloneMs, batches } = row.overlap;
        const exposed = (best.wallMs - stepsMs) / batches;
        name += `: ${exposed.toFixed(1)} of ${(aloneMs / batches).toFixed(1)} ms/batch exposed`;
        cpu = ['-', '-']; // busy-waiting steps burn CPU
      }
      table.push([threads, name, rates[rates.length - 1].toFixed(0), rates[rates.length >> 1].toFixed(0), ...cpu]);
    }
  }
  writeResults({
    name: 'pipeline',
    title: 'Data pipeline: decoding, float batches, and what a blocking train step hides',
    ...started,
    markdown: [
      `Images ${WIDTH}x${HEIGHT}, ${args.dirs.length ? `from ${args.dirs.join(', ')}` : `${args.count} PNG and ${args.count} JPEG made by the script`}; sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}), @napi-rs/canvas. ` +
        `Best and median of ${args.repeats} runs after a warm-up, each configuration in a child process (libuv's pool size is fixed at its start). ` +
        'img/cpu-s = images / process CPU time (all threads); main us/img = the main thread\'s CPU per image, what a train step on it competes with. ' +
        'Rows with blocking steps say how many ms per batch of the pipeline\'s work the steps did not hide.',
      '',
      markdownTable(head, table),
    ].join('\n'),
    data: { count: args.count, repeats: args.repeats, dirs: args.dirs, results },
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i < 2 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of table) console.log(line(r));
}

await main();
