/**
 * A CAPTCHA reader: an exported ensemble (a directory with manifest.json), or one trained
 * model's directory. Images are decoded once and each batch goes through every member; the
 * members' probabilities are combined as the manifest says (majority vote, or a weighted
 * average for soft and greedy).
 *
 *   const reader = await loadReader('readers/best');
 *   const { results, problems } = await reader.read(['a.png', 'b.png']);
 *   for (const r of results) console.log(r.file, r.text, r.confidence);
 *   reader.dispose();
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_CHARSET } from '../data/charset.ts';
import { readLabelFile } from '../train/label-file.ts';
import { initBackend, type BackendChoice } from '../train/backend.ts';
import * as tf from '../train/tf.ts';
import { UserError } from '../util/errors.ts';
import { soft, vote } from './combine.ts';
import { argmax } from './probs.ts';
import { decodeImageFiles } from './images.ts';
import { findInputShape, MANIFEST_FILE, readManifest, ReaderError, verifyFiles, type CombineMethod, type Manifest } from './manifest.ts';
import { loadMember, type Member } from './member.ts';

export interface ReadResult {
  file: string;
  text: string;
  /** Product of the per-character confidences: how sure the reader is of the whole text. */
  confidence: number;
  /** Per character: the chosen character and the combined probability it got. */
  chars: Array<{ char: string; p: number }>;
  /** Combined probabilities [length][classes], when asked for. */
  probs?: number[][];
}

export interface ReadOutput {
  results: ReadResult[];
  /** Files that could not be read (not an image, wrong size, ...), with the reason. */
  problems: Array<{ file: string; problem: string }>;
}

export interface ReadOptions {
  /** Images per batch through the members (default 32: larger batches run slower per image on wasm). */
  batch?: number;
  /** Resize images of another size to the reader's input instead of refusing them. */
  resize?: boolean;
  /** Include every character's probabilities. */
  probs?: boolean;
}

export interface Reader {
  readonly manifest: Manifest;
  readonly members: readonly Member[];
  /** Reads image files; files that cannot be read are reported, the rest still read. */
  read(files: readonly string[], opts?: ReadOptions): Promise<ReadOutput>;
  /** The combined reading of already decoded images (n*H*W*3 floats in [0, 1], as training feeds them). */
  predict(images: Float32Array, n: number, batch?: number): Promise<Combined>;
  dispose(): void;
}

export interface LoadReaderOptions {
  /** Backend to run on (default auto: tfjs-node-gpu, tfjs-node, wasm, cpu). */
  backend?: BackendChoice;
  log?: (msg: string) => void;
}

/** A single model directory (model.json) seen as a one-member reader; its labels as its trial's label.json records them. */
function singleModelManifest(dir: string): Manifest {
  const topology = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const inputShape = findInputShape(topology);
  const recorded = readLabelFile(dir);
  return {
    format: 'sweep-reader',
    version: 1,
    name: path.basename(path.resolve(dir, '..')),
    method: 'single',
    createdAt: new Date(0).toISOString(),
    sweep: null,
    input: { height: inputShape?.[1] ?? 60, width: inputShape?.[2] ?? 200, channels: 3 },
    label: { length: 0, classes: 0, charset: recorded?.charset ?? DEFAULT_CHARSET, case: recorded?.case ?? 'lower' },
    datasets: { val: null, test: null },
    members: [{ trialId: path.basename(path.resolve(dir, '..')), sweep: null, rank: 1, weight: 1, params: {}, metrics: {}, dir: '.' }],
    files: {},
  };
}

/** Loads a reader from an exported directory or a trained model's directory. */
export async function loadReader(dir: string, opts: LoadReaderOptions = {}): Promise<Reader> {
  let manifest: Manifest;
  try {
    if (existsSync(path.join(dir, MANIFEST_FILE))) {
      manifest = readManifest(dir);
      verifyFiles(dir, manifest);
    } else if (existsSync(path.join(dir, 'model.json'))) {
      manifest = singleModelManifest(dir);
    } else {
      throw new UserError(`${dir}: neither an exported reader (${MANIFEST_FILE}) nor a model directory (model.json)`);
    }
  } catch (err) {
    if (err instanceof ReaderError) throw new UserError(err.message);
    throw err;
  }
  await initBackend(opts.backend ?? 'auto', opts.log ?? (() => {}));
  const members: Member[] = [];
  try {
    for (const m of manifest.members) members.push(await loadMember(path.join(dir, m.dir)));
  } catch (err) {
    members.forEach((m) => m.dispose());
    throw err;
  }
  checkMembers(dir, manifest, members);
  return makeReader(manifest, members);
}

function checkMembers(dir: string, manifest: Manifest, members: readonly Member[]): void {
  const first = members[0];
  if (manifest.method === 'single') {
    manifest.input = { height: first.height, width: first.width, channels: 3 };
    manifest.label = { ...manifest.label, length: first.length, classes: first.classes };
  }
  members.forEach((m, i) => {
    const what = `${dir}: member ${manifest.members[i].trialId}`;
    if (m.height !== manifest.input.height || m.width !== manifest.input.width) {
      throw new UserError(`${what} takes ${m.height}x${m.width} images where the manifest says ${manifest.input.height}x${manifest.input.width}`);
    }
    if (m.length !== first.length || m.classes !== first.classes) throw new UserError(`${what} reads ${m.length} characters of ${m.classes} classes, unlike the first member`);
  });
  if (manifest.label.charset.length !== first.classes) {
    throw new UserError(`${dir}: the charset has ${manifest.label.charset.length} characters but the models have ${first.classes} classes`);
  }
}

function makeReader(manifest: Manifest, members: Member[]): Reader {
  const { height, width } = manifest.input;
  const method: CombineMethod = manifest.method;
  const weights = manifest.members.map((m) => m.weight);
  const length = members[0].length;
  const classes = members[0].classes;
  const per = length * classes;

  async function predict(images: Float32Array, n: number, batch = 32): Promise<Combined> {
    const out: Combined = { probs: new Float32Array(n * per), chosen: new Int32Array(n * length) };
    const pixels = height * width * 3;
    for (let start = 0; start < n; start += batch) {
      const count = Math.min(batch, n - start);
      const x = tf.tensor4d(images.subarray(start * pixels, (start + count) * pixels), [count, height, width, 3]);
      const probs: Float32Array[] = [];
      try {
        for (const m of members) {
          const y = m.predict(x);
          probs.push((await y.data()) as Float32Array);
          y.dispose();
        }
      } finally {
        x.dispose();
      }
      const c = combineMembers(method, probs, weights, count, length, classes);
      out.probs.set(c.probs, start * per);
      out.chosen.set(c.chosen, start * length);
    }
    return out;
  }

  return {
    manifest,
    members,
    predict,
    async read(files, opts = {}) {
      const decoded = await decodeImageFiles([...files], { height, width, resize: opts.resize });
      const c = await predict(decoded.images, decoded.ok.length, opts.batch);
      const results = decoded.ok.map((file, i) =>
        toResult(file, c.probs.subarray(i * per, (i + 1) * per), c.chosen.subarray(i * length, (i + 1) * length), manifest.label.charset, length, classes, opts.probs),
      );
      return { results, problems: decoded.problems };
    },
    dispose: () => members.forEach((m) => m.dispose()),
  };
}

/**
 * The members' combined reading: the weighted average of their probabilities and, per
 * character, the chosen class: the vote's winner for `vote`, the average's arg-max otherwise.
 */
export function combineMembers(method: CombineMethod, probs: readonly Float32Array[], weights: readonly number[], n: number, length: number, classes: number): Combined {
  const members = probs.map((data) => ({ n, length, classes, data }));
  const avg = soft(members, weights);
  return { probs: avg.data, chosen: method === 'vote' ? vote(members, weights) : argmax(avg) };
}

export interface Combined {
  /** Weighted average probabilities [n, length, classes]. */
  probs: Float32Array;
  /** Chosen class per character [n, length]. */
  chosen: Int32Array;
}

/** One image's reading; a character's confidence is the members' average probability of the chosen class. */
function toResult(file: string, p: Float32Array, chosen: Int32Array, charset: string, length: number, classes: number, withProbs?: boolean): ReadResult {
  const chars: ReadResult['chars'] = [];
  for (let pos = 0; pos < length; pos++) chars.push({ char: charset[chosen[pos]], p: p[pos * classes + chosen[pos]] });
  const r: ReadResult = { file, text: chars.map((c) => c.char).join(''), confidence: chars.reduce((a, c) => a * c.p, 1), chars };
  if (withProbs) r.probs = Array.from({ length }, (_, pos) => Array.from(p.subarray(pos * classes, (pos + 1) * classes)));
  return r;
}
