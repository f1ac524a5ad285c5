/**
 * What a checkpoint gets wrong, per character position: is a wrong character one the image
 * holds elsewhere (recognised, but put in the wrong place) or one it does not hold at all?
 *
 *   npx tsx bench/positions.ts --model DIR/model.json --data DIR [--batch-stats] [--json]
 *
 * --batch-stats evaluates in training mode, with BatchNorm normalising by each batch's own
 * statistics (batches of 16, as the accuracy runs train) instead of its moving averages: when
 * that scores far higher, the weights are fine and the moving averages are what broke. It also
 * turns dropout on, so use it on models trained without dropout.
 *
 * For each position: accuracy; "in the label" (the predicted character occurs somewhere in the
 * label); and the accuracy a model would reach that knew the label's characters but not their
 * order and guessed among those not pinned to positions 1 and 6 (1 / the number of distinct
 * characters in positions 2-5, averaged; a lower baseline than picking the most frequent of them
 * when a character repeats). Middle positions near that guess, with "in the label" near 1, mean
 * the model recognises the characters but cannot order them. The table goes to
 * bench/results/positions.md and .json.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_LABEL_SPEC } from '../src/data/charset.ts';
import { loadDataset } from '../src/data/dataset.ts';
import { toTrainSet } from '../src/data/trainset.ts';
import { initBackend } from '../src/train/backend.ts';
import { fileUrl, registerFileRouter } from '../src/train/io.ts';
import '../src/train/model.ts'; // registers the model's own layer classes
import * as tf from '../src/train/tf.ts';
import { runStart, writeResults } from './lib/results.ts';

const started = runStart();

const { values: a } = parseArgs({
  options: { model: { type: 'string' }, data: { type: 'string' }, 'batch-stats': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
});
if (!a.model || !a.data) {
  console.error('usage: npx tsx bench/positions.ts --model DIR/model.json --data DIR [--batch-stats] [--json]');
  process.exit(2);
}
await initBackend('auto', () => {});
registerFileRouter();
const L = DEFAULT_LABEL_SPEC.length;
const C = DEFAULT_LABEL_SPEC.charset.length;
const model = await tf.tfl.loadLayersModel(fileUrl(a.model));
const [, h, w] = model.inputs[0].shape as number[];
const set = toTrainSet(await loadDataset(a.data, { spec: DEFAULT_LABEL_SPEC, height: h, width: w }));
const correct = new Array<number>(L).fill(0);
const inLabel = new Array<number>(L).fill(0);
let orderBlind = 0;
let allRight = 0;
let n = 0;
for await (const b of set.batches({ batchSize: a['batch-stats'] ? 16 : 64, shuffle: false, seed: 0, epoch: 0 })) {
  const argmax = tf.tidy(() => {
    const x = tf.tensor4d(b.x, [b.n, h, w, 3]);
    const outputs = (a['batch-stats'] ? model.apply(x, { training: true }) : model.predict(x)) as tf.Tensor[];
    return tf.argMax(tf.stack(outputs, 1), 2).dataSync() as Int32Array;
  });
  for (let i = 0; i < b.n; i++) {
    const label = Array.from(b.y.subarray(i * L, (i + 1) * L));
    if (label.every((c, j) => argmax[i * L + j] === c)) allRight++;
    for (let j = 0; j < L; j++) {
      const p = argmax[i * L + j];
      if (p === label[j]) correct[j]++;
      if (label.includes(p)) inLabel[j]++;
    }
    orderBlind += 1 / new Set(label.slice(1, L - 1)).size;
  }
  n += b.n;
}
const result = {
  images: n,
  classes: C,
  sequence_accuracy: allRight / n,
  accuracy_by_position: correct.map((c) => c / n),
  in_label_by_position: inLabel.map((c) => c / n),
  wrong_but_in_label_by_position: inLabel.map((c, j) => (c - correct[j]) / Math.max(1, n - correct[j])),
  order_blind_guess_middle: orderBlind / n,
};
const title = `${a.model} on ${a.data}: ${n} images${a['batch-stats'] ? ', BatchNorm with batch statistics (training mode)' : ''}`;
const table = [
  `| position | ${result.accuracy_by_position.map((_, j) => j + 1).join(' | ')} |`,
  `|---|${result.accuracy_by_position.map(() => '---').join('|')}|`,
  `| accuracy | ${result.accuracy_by_position.map((v) => v.toFixed(3)).join(' | ')} |`,
  `| predicted character is in the label | ${result.in_label_by_position.map((v) => v.toFixed(3)).join(' | ')} |`,
  `| of the wrong ones, in the label elsewhere | ${result.wrong_but_in_label_by_position.map((v) => v.toFixed(3)).join(' | ')} |`,
];
const sequence = `sequence accuracy (all six right): ${result.sequence_accuracy.toFixed(4)}`;
const orderBlindLine = `order-blind guess for positions 2-5 (1 / distinct characters there): ${result.order_blind_guess_middle.toFixed(3)}`;
writeResults({
  name: 'positions',
  title: 'What a checkpoint gets wrong, per character position',
  ...started,
  markdown: [`${title}.`, '', ...table, '', `- ${sequence}`, `- ${orderBlindLine}`].join('\n'),
  data: { model: a.model, data: a.data, batchStats: a['batch-stats'], ...result },
});
if (a.json) {
  console.log(JSON.stringify(result, null, 1));
} else {
  console.log(`# ${title}`);
  for (const line of table) console.log(line);
  console.log(`# ${sequence}`);
  console.log(`# ${orderBlindLine}`);
}
