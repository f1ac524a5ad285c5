/**
 * What augmentation costs the data pipeline: railway PNGs decoded into float32 batches of 32 by
 * one decode thread (BatchStream threads = 1), without augmentation, with each augmentation
 * alone, and with all of them (the robustness bench's settings).
 *
 *   npx tsx bench/augment.ts [--count 2000] [--repeats 3]
 *
 * "img/cpu-s" divides images by the CPU time of the whole process (main thread and decode
 * thread), so other load on a shared machine counts little; the best of --repeats is kept.
 * Writes bench/results/augment.md and .json.
 */
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { BatchStream } from '../src/data/batches.ts';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { closeDecodePools } from '../src/data/decode-pool.ts';
import { generateDataset } from '../src/data/generate/index.ts';
import { AUGMENT_PARAMS, type AugmentSpec } from '../src/train/params.ts';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const { values: a } = parseArgs({ options: { count: { type: 'string', default: '2000' }, repeats: { type: 'string', default: '3' } } });
const count = Number(a.count);
const started = runStart();
const dir = path.join(os.tmpdir(), `sweep-bench-augment-${count}`);
if (!existsSync(path.join(dir, 'labels.csv'))) {
  mkdirSync(dir, { recursive: true });
  await generateDataset({ style: 'railway', count, seed: 5, out: dir, force: true });
}
const ds = await loadDataset(dir, { spec: DEFAULT_LABEL_SPEC });

const OFF = Object.fromEntries(AUGMENT_PARAMS.map((k) => [k, 0])) as AugmentSpec;
const ALL: AugmentSpec = { aug_rotate: 6, aug_shear: 0.15, aug_scale: 0.08, aug_shift: 3, aug_contrast: 0.25, aug_color: 0.15, aug_noise: 0.03, aug_jpeg: 0.3 };
const CASES: Array<[string, AugmentSpec | null]> = [
  ['none', null],
  ...AUGMENT_PARAMS.map((k): [string, AugmentSpec] => [`${k} ${k === 'aug_jpeg' ? 1 : ALL[k]}`, { ...OFF, [k]: k === 'aug_jpeg' ? 1 : ALL[k] }]),
  ['all (robustness bench)', ALL],
];

async function measure(augment: AugmentSpec | null, epoch: number): Promise<number> {
  const cpu0 = process.cpuUsage();
  const stream = new BatchStream(ds, { batchSize: 32, shuffle: true, seed: 1, epoch, threads: 1, augment });
  let n = 0;
  for await (const b of stream) n += b.n;
  const u = process.cpuUsage(cpu0);
  return n / ((u.user + u.system) / 1e6);
}

await measure(null, 99); // start the decode thread and warm the caches
const rows: Array<{ case: string; img_per_cpu_s: number; us_per_img: number }> = [];
for (const [name, spec] of CASES) {
  let best = 0;
  for (let r = 0; r < Number(a.repeats); r++) best = Math.max(best, await measure(spec, r));
  rows.push({ case: name, img_per_cpu_s: Math.round(best), us_per_img: Math.round(1e6 / best) });
  console.log(`${name}: ${Math.round(best)} img/cpu-s`);
}
await closeDecodePools();
const base = rows[0].us_per_img;
writeResults({
  name: 'augment',
  title: 'What augmentation costs the data pipeline',
  ...started,
  status: 'complete',
  markdown: [
    `${count} railway PNGs (200x60), batches of 32, one decode thread; images per CPU second of the whole process (best of ${a.repeats}), and the microseconds each augmentation adds per image.`,
    '',
    markdownTable(['augmentation', 'img/cpu-s', 'us/img', 'added us/img'], rows.map((r) => [r.case, r.img_per_cpu_s, r.us_per_img, r.us_per_img - base])),
  ].join('\n'),
  data: { count, rows },
});
