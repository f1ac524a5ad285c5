/**
 * Speed of the ensemble's pure core on a sweep-sized pool: greedy selection, vote and soft
 * average over synthetic predictions, and float16 decoding of the stored predictions.
 *
 *   npx tsx bench/ensemble-select.ts [--members 50] [--n 1000] [--rounds 25] [--repeats 5] [--seed ensemble-select]
 *
 * Members are drawn around a hidden truth (6 characters of 36 classes per image): each character
 * has a shared difficulty, each member a skill, so members err on the same hard characters more
 * often than by chance, with sequence accuracies from about 0.4 to 0.95. Timings are medians of
 * `repeats` runs on one core. It also counts what float16 storage changes: argmaxes, votes, and
 * greedy's choices. Writes bench/results/ensemble-select.md and .json.
 */
import { parseArgs } from 'node:util';
import { decodeProbs, encodeProbs } from '../src/track/codec.ts';
import { greedySelect, soft, vote } from '../src/ensemble/combine.ts';
import { accuracy, argmax, makeProbs, type Probs } from '../src/ensemble/probs.ts';
import { Rng } from '../src/util/rng.ts';
import { load, markdownTable, writeResults } from './lib/results.ts';

const LENGTH = 6;
const CLASSES = 36;

const { values } = parseArgs({
  options: {
    members: { type: 'string', default: '50' },
    n: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '25' },
    repeats: { type: 'string', default: '5' },
    seed: { type: 'string', default: 'ensemble-select' },
  },
});
const opt = { members: Number(values.members), n: Number(values.n), rounds: Number(values.rounds), repeats: Number(values.repeats), seed: values.seed! };

/** Hidden truth, per-character difficulty, and members ranked best first by sequence accuracy. */
function synthesize(): { labels: Int32Array; members: Probs[] } {
  const rng = new Rng(opt.seed);
  const rows = opt.n * LENGTH;
  const labels = Int32Array.from({ length: rows }, () => rng.int(0, CLASSES - 1));
  const difficulty = Float64Array.from({ length: rows }, () => rng.next());
  // The class a character is mistaken for when members err alike (a confusable look-alike).
  const lookalike = Int32Array.from(labels, (y) => (y + rng.int(1, CLASSES - 1)) % CLASSES);
  const members = Array.from({ length: opt.members }, (_, m) => member(rng, labels, difficulty, lookalike, 0.86 + (0.1 * m) / Math.max(1, opt.members - 1)));
  const seqAcc = (p: Probs) => accuracy(argmax(p), labels, LENGTH).seq_acc;
  return { labels, members: members.map((p) => ({ p, acc: seqAcc(p) })).sort((a, b) => b.acc - a.acc).map((x) => x.p) };
}

function member(rng: Rng, labels: Int32Array, difficulty: Float64Array, lookalike: Int32Array, skill: number): Probs {
  const data = new Float32Array(labels.length * CLASSES);
  const z = new Float64Array(CLASSES);
  for (let r = 0; r < labels.length; r++) {
    // Right when the shared difficulty and the member's own noise together stay under its skill.
    const right = 0.95 * difficulty[r] + 0.05 * rng.next() < skill;
    const wrongAs = rng.next() < 0.85 ? lookalike[r] : (labels[r] + rng.int(1, CLASSES - 1)) % CLASSES;
    for (let c = 0; c < CLASSES; c++) z[c] = rng.normal(0, 1);
    z[right ? labels[r] : wrongAs] += rng.uniform(4, 9);
    if (!right) z[labels[r]] += rng.uniform(0, 4); // a near miss: the truth is often runner-up
    softmaxInto(z, data, r * CLASSES);
  }
  return makeProbs(labels.length / LENGTH, LENGTH, CLASSES, data);
}

function softmaxInto(z: Float64Array, out: Float32Array, at: number): void {
  let max = -Infinity;
  for (const v of z) max = Math.max(max, v);
  let total = 0;
  for (let c = 0; c < z.length; c++) total += Math.exp(z[c] - max);
  for (let c = 0; c < z.length; c++) out[at + c] = Math.exp(z[c] - max) / total;
}

/**
 * Median wall and CPU time in ms of `repeats` calls, after one warm-up call; returns the last
 * result too. CPU time (user + system of this single-threaded process) is the number to read on
 * a shared machine: wall time there includes waiting for a core.
 */
function time<T>(f: () => T): { ms: number; cpuMs: number; result: T } {
  let result = f();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < opt.repeats; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    result = f();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { ms: median(wall), cpuMs: median(cpu), result };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** How many entries of two class-index arrays differ. */
function differing(a: Int32Array, b: Int32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

const loadAtStart = load();
const t0 = performance.now();
const { labels, members } = synthesize();
const genMs = performance.now() - t0;
const blobs = members.map((p) => encodeProbs(p.data));
const count = opt.n * LENGTH * CLASSES;
const decoded = blobs.map((b) => makeProbs(opt.n, LENGTH, CLASSES, decodeProbs(b, count)));

const greedy = time(() => greedySelect(members, labels, { rounds: opt.rounds, pool: opt.members }));
const voted = time(() => vote(members));
const averaged = time(() => soft(members));
const decoding = time(() => blobs.map((b) => decodeProbs(b, count)));
const encoding = time(() => members.map((p) => encodeProbs(p.data)));

// What float16 storage changes, on these data.
const argmaxChanged = members.reduce((s, p, m) => s + differing(argmax(p), argmax(decoded[m])), 0);
const top5 = members.slice(0, 5);
const voteChanged = differing(vote(top5), vote(decoded.slice(0, 5))) + differing(voted.result, vote(decoded));
const greedy16 = greedySelect(decoded, labels, { rounds: opt.rounds, pool: opt.members });
const sameGreedy = greedy16.picks.join() === greedy.result.picks.join();

const seq = (pred: Int32Array) => accuracy(pred, labels, LENGTH).seq_acc;
const accuracies = {
  best_member: seq(argmax(members[0])),
  worst_member: seq(argmax(members[members.length - 1])),
  vote_top5: seq(vote(top5)),
  vote_all: seq(voted.result),
  soft_all: seq(argmax(averaged.result)),
  greedy: greedy.result.trajectory[greedy.result.trajectory.length - 1],
  greedy_weights_through_soft: seq(argmax(soft(members, greedy.result.weights))),
  greedy_float16: greedy16.trajectory[greedy16.trajectory.length - 1],
};
const loadAtEnd = load();

const f = (x: number, d = 1) => x.toFixed(d);
const timings = [
  ['greedySelect', `pool ${opt.members}, ${opt.rounds} rounds`, greedy],
  ['vote', `${opt.members} members`, voted],
  ['soft', `${opt.members} members`, averaged],
  ['decodeProbs', `${opt.members} blobs of ${count * 2} bytes`, decoding],
  ['encodeProbs', `${opt.members} arrays of ${count} floats`, encoding],
] as const;
const table = markdownTable(
  ['operation', 'size', 'median CPU ms', 'median wall ms'],
  timings.map(([op, size, t]) => [op, size, f(t.cpuMs), f(t.ms)]),
);
const accTable = markdownTable(
  ['predictions', 'validation sequence accuracy'],
  Object.entries(accuracies).map(([k, v]) => [k.replace(/_/g, ' '), f(v, 4)]),
);
const summary = [
  `${opt.members} members x ${opt.n} images x ${LENGTH} characters x ${CLASSES} classes (seed \`${opt.seed}\`), medians of ${opt.repeats} runs after a warm-up, one single-threaded process. CPU time is this process's user + system time; wall time includes waiting for a core on a loaded machine.`,
  `Synthetic data took ${f(genMs / 1000, 2)} s to draw (not timed above).`,
  '',
  table,
  '',
  `float16 storage (${count * 2} bytes per member instead of ${count * 4}): ${argmaxChanged} of ${opt.members * opt.n * LENGTH} member argmaxes changed, ` +
    `${voteChanged} vote answers changed (top 5 and all ${opt.members}), greedy's picks ${sameGreedy ? 'identical' : 'DIFFERENT'} on the decoded predictions.`,
  '',
  'Accuracies on these synthetic data (greedy is scored on the data it selected on, so it is optimistic; they show the rules work, not what a real sweep gains):',
  '',
  accTable,
].join('\n');
console.log(summary);
const paths = writeResults({
  name: 'ensemble-select',
  title: 'Ensemble selection, voting and float16 decoding: speed on a 50-member pool',
  markdown: summary,
  loadAtStart,
  data: {
    options: opt,
    shape: { members: opt.members, n: opt.n, length: LENGTH, classes: CLASSES },
    cpu_ms: Object.fromEntries(timings.map(([op, , t]) => [op, +t.cpuMs.toFixed(2)])),
    wall_ms: Object.fromEntries(timings.map(([op, , t]) => [op, +t.ms.toFixed(2)])),
    float16: { argmax_changed: argmaxChanged, vote_changed: voteChanged, greedy_picks_identical: sameGreedy },
    accuracies,
    greedy: { weights: greedy.result.weights, trajectory: greedy.result.trajectory },
    load: { start: loadAtStart, end: loadAtEnd },
  },
});
console.log(`\nwrote ${paths.md} and ${paths.json}`);
