/**
 * Prediction throughput of an ensemble: images/s for K members at each width, one process, with
 * BatchNorm folded into the convolutions (src/ensemble/member.ts) and without (LayersModel.predict).
 *
 *   npx tsx bench/predict.ts [--backend wasm] [--widths 0.125,0.25,1] [--ks 1,3,5]
 *                            [--batches 32,128] [--images 256,128,32] [--reps 2] [--kernel 3x3]
 *
 * Members are randomly initialised models of the trainer's architecture (CNN+GRU), saved with
 * different seeds and loaded through loadMember. Images come from the generator (railway) and
 * are decoded once (decodeImageFiles; its rate is printed on its own); each batch becomes one
 * tensor that every member reads, and the members' probabilities are summed (a soft vote) and
 * read back, as `sweep predict` does. A batch larger than the image count is clamped to it.
 *
 * Speed is images per CPU second of this process (process.cpuUsage, best of --reps): on a
 * shared machine the wall clock mostly measures the other processes. Wall-clock images/s and
 * the load average are printed with every row. `cost vs K x 1` is the CPU time of K members
 * over K times that of one member at the same width, batch and folding (goal: <= 1.10).
 */
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { closeDecodePools } from '../src/data/decode-pool.ts';
import { generateDataset } from '../src/data/generate/index.ts';
import { decodeImageFiles } from '../src/ensemble/images.ts';
import { loadMember, type Member } from '../src/ensemble/member.ts';
import { initBackend, type BackendChoice } from '../src/train/backend.ts';
import { fileUrl, registerFileRouter } from '../src/train/io.ts';
import { buildGruModel, forwardMacs, type ModelSpec } from '../src/train/model.ts';
import * as tf from '../src/train/tf.ts';
import { load, markdownTable, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    widths: { type: 'string', default: '0.125,0.25,1' },
    ks: { type: 'string', default: '1,3,5' },
    batches: { type: 'string', default: '32,128' },
    images: { type: 'string', default: '256,128,32' },
    reps: { type: 'string', default: '2' },
    kernel: { type: 'string', default: '3x3' },
    profile: { type: 'boolean', default: true },
  },
});

const list = (s: string) => s.split(',').map(Number);
const widths = list(a.widths!);
const ks = list(a.ks!);
const batchSizes = list(a.batches!);
const imageCounts = list(a.images!);
const reps = Number(a.reps);
const [kh, kw] = a.kernel!.split('x').map(Number);
const H = 60;
const W = 200;
const PER = H * W * 3;

interface Row {
  width: number;
  k: number;
  batch: number;
  folded: boolean;
  images: number;
  cpu_img_s: number;
  wall_img_s: number;
  /** CPU time of K members / (K x CPU time of one), same width, batch and folding. */
  cost_vs_k_singles: number | null;
  load1: number;
}

function specFor(width: number, seed: number): ModelSpec {
  return { kernel_size: kh, kernel_width: kw, alpha: 1e-4, dropout: 0.2, width, seed, height: H, imageWidth: W, length: 6, classes: 36 };
}

/** One pass over the images through every member; returns CPU and wall seconds. */
function pass(members: Member[], images: Float32Array, n: number, batch: number): { cpu: number; wall: number } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const x = tf.tensor4d(images.subarray(s * PER, (s + m) * PER), [m, H, W, 3]);
    let sum: tf.Tensor | null = null;
    for (const member of members) {
      const p = member.predict(x);
      if (sum) {
        const next: tf.Tensor = tf.add(sum, p);
        tf.dispose([sum, p]);
        sum = next;
      } else {
        sum = p;
      }
    }
    sum!.dataSync();
    tf.dispose([x, sum!]);
  }
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1e6, wall: (performance.now() - t0) / 1000 };
}

/** Where the time of one folded batch goes, per kernel (tf.profile's wall-clock kernel times). */
async function profile(member: Member, images: Float32Array, batch: number): Promise<Array<{ kernel: string; ms: number; share: number }>> {
  const x = tf.tensor4d(images.subarray(0, batch * PER), [batch, H, W, 3]);
  member.predict(x).dispose();
  const agg = new Map<string, number>();
  const rounds = 5;
  for (let r = 0; r < rounds; r++) {
    const p = await tf.profile(() => member.predict(x));
    for (const k of p.kernels) {
      if (k.name.endsWith('__op')) continue; // the op wrapping a kernel, counted by the kernel
      const key = `${k.name} ${JSON.stringify(k.inputShapes[0])}`;
      agg.set(key, (agg.get(key) ?? 0) + (k.kernelTimeMs as number));
    }
    (p.result as tf.Tensor).dispose();
  }
  x.dispose();
  const total = [...agg.values()].reduce((s, v) => s + v, 0);
  return [...agg]
    .sort((p, q) => q[1] - p[1])
    .map(([kernel, ms]) => ({ kernel, ms: ms / rounds, share: ms / total }));
}

async function main(): Promise<void> {
  const loadAtStart = load();
  const active = await initBackend(a.backend as BackendChoice);
  console.log(`backend ${active.backend}: ${active.reason}`);
  registerFileRouter();
  const root = mkdtempSync(join(os.tmpdir(), 'sweep-bench-predict-'));
  try {
    const maxImages = Math.max(...imageCounts);
    await generateDataset({ style: 'railway', count: maxImages, seed: 5, out: join(root, 'images') });
    const files = Array.from({ length: maxImages }, (_, i) => join(root, 'images', `${String(i).padStart(6, '0')}.png`));
    const d0 = performance.now();
    const decoded = await decodeImageFiles(files, { height: H, width: W });
    const decodeImgS = maxImages / ((performance.now() - d0) / 1000);
    if (decoded.problems.length) throw new Error(`generated images failed to decode: ${JSON.stringify(decoded.problems[0])}`);
    console.log(`decoded ${maxImages} images once: ${decodeImgS.toFixed(0)} images/s (in-process canvas, wall clock)`);

    const rows: Row[] = [];
    let prof: Awaited<ReturnType<typeof profile>> = [];
    for (const [wi, width] of widths.entries()) {
      const n = imageCounts[Math.min(wi, imageCounts.length - 1)];
      const dirs: string[] = [];
      for (let s = 0; s < Math.max(...ks); s++) {
        const dir = join(root, `w${width}-s${s}`);
        const model = buildGruModel(specFor(width, 100 + s));
        await model.save(fileUrl(dir));
        model.dispose();
        dirs.push(dir);
      }
      for (const folded of [true, false]) {
        const members = await Promise.all(dirs.map((d) => loadMember(d, { fold: folded })));
        for (const requested of batchSizes) {
          const batch = Math.min(requested, n);
          if (rows.some((r) => r.width === width && r.folded === folded && r.batch === batch)) continue;
          // Repetitions interleave the Ks, so a change in the machine's load hits all of them.
          const times = ks.map(() => ({ cpu: Infinity, wall: Infinity }));
          ks.forEach((k) => pass(members.slice(0, k), decoded.images, Math.min(n, batch), batch)); // warm-up
          for (let r = 0; r < reps; r++) {
            ks.forEach((k, i) => {
              const t = pass(members.slice(0, k), decoded.images, n, batch);
              times[i] = { cpu: Math.min(times[i].cpu, t.cpu), wall: Math.min(times[i].wall, t.wall) };
            });
          }
          let single = 0;
          for (const [i, k] of ks.entries()) {
            const t = times[i];
            if (k === 1) single = t.cpu;
            const row: Row = {
              width, k, batch, folded, images: n,
              cpu_img_s: n / t.cpu,
              wall_img_s: n / t.wall,
              cost_vs_k_singles: single > 0 ? t.cpu / (k * single) : null,
              load1: load()[0],
            };
            rows.push(row);
            console.log(
              `width ${width} K ${k} batch ${batch} ${folded ? 'folded  ' : 'unfolded'}: ${row.cpu_img_s.toFixed(1)} img/s (CPU), ` +
                `${row.wall_img_s.toFixed(1)} wall; cost vs K x 1 ${row.cost_vs_k_singles?.toFixed(3) ?? '-'}; load ${row.load1}`,
            );
          }
        }
        if (a.profile && folded && width === widths[0]) prof = await profile(members[0], decoded.images, Math.min(32, n));
        members.forEach((m) => m.dispose());
      }
    }
    report(rows, prof, decodeImgS, loadAtStart, active.backend, active.reason);
  } finally {
    await closeDecodePools();
    rmSync(root, { recursive: true, force: true });
  }
}

function report(rows: Row[], prof: Array<{ kernel: string; ms: number; share: number }>, decodeImgS: number, loadAtStart: [number, number, number], backend: string, reason: string): void {
  const f = (x: number, d = 1) => x.toFixed(d);
  const table = markdownTable(
    ['width', 'K', 'batch', 'BN', 'img/s (CPU)', 'img/s (wall)', 'cost vs K x 1', 'folded speed-up', 'load (1 min)'],
    rows.map((r) => {
      const twin = rows.find((o) => o.width === r.width && o.k === r.k && o.batch === r.batch && o.folded !== r.folded);
      return [
        r.width, r.k, r.batch, r.folded ? 'folded' : 'LayersModel', f(r.cpu_img_s), f(r.wall_img_s),
        r.cost_vs_k_singles === null ? '-' : f(r.cost_vs_k_singles, 3),
        r.folded && twin ? `${f(r.cpu_img_s / twin.cpu_img_s, 2)}x` : '',
        r.load1,
      ];
    }),
  );
  const macs = (w: number) => forwardMacs(specFor(w, 0)) / 1e6;
  const one = rows.filter((r) => r.width === 0.125 && r.k === 1 && r.folded).sort((p, q) => q.cpu_img_s - p.cpu_img_s)[0];
  const worst = Math.max(...rows.filter((r) => r.cost_vs_k_singles !== null).map((r) => r.cost_vs_k_singles!));
  const profTable = prof.length
    ? markdownTable(['kernel (input shape)', 'ms per batch', 'share'], prof.slice(0, 14).map((p) => [p.kernel, f(p.ms, 2), `${f(100 * p.share)}%`]))
    : '';
  const markdown = [
    `Backend ${backend}: ${reason}. Kernel ${kh}x${kw}; forward multiply-accumulates per image: ` +
      widths.map((w) => `${f(macs(w))} M at width ${w}`).join(', ') + '.',
    '',
    `Images per CPU second of the process (best of ${reps} passes): the machine was shared (see the load column), ` +
      'so the wall-clock rate is mostly a measure of the other processes and is shown for completeness. ' +
      `Images decoded once before the passes, ${f(decodeImgS, 0)} images/s (in-process canvas, wall clock), not counted in the rows.`,
    '',
    table,
    '',
    one ? `One width-0.125 member, folded: best ${f(one.cpu_img_s)} images/s per CPU second at batch ${one.batch} (goal 1,000). ` : '',
    Number.isFinite(worst) ? `Largest cost of K members against K single members: ${f(worst, 3)} (goal <= 1.10).` : '',
    '',
    profTable ? `Where a folded batch of 32 goes at width ${widths[0]} (tf.profile, wall-clock kernel times, so inflated by the load alike):\n\n${profTable}` : '',
  ].join('\n');
  const out = writeResults({ name: 'predict', title: 'Prediction throughput: K members, folded BatchNorm', markdown, data: { backend, reason, kernel: [kh, kw], decode_img_s: decodeImgS, rows, profile: prof }, loadAtStart });
  console.log(`\n${table}\n\nwrote ${out.md} and ${out.json}`);
}

await main();
