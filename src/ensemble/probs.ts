/**
 * A set of per-character class probabilities, as a trial writes them (`predictions/*.probs.f32`):
 * one row of `classes` numbers for every (item, position), row-major [item][position][class].
 * Labels are class indices in the same [item][position] order.
 *
 * Pure functions; where the numbers come from (disk, Postgres) is someone else's business.
 */
import { UserError } from '../util/errors.ts';

export interface Probs {
  /** Items (images). */
  n: number;
  /** Characters per item. */
  length: number;
  classes: number;
  /** n * length * classes values, row-major [item][position][class]. */
  data: Float32Array;
}

/** Class indices, n * length of them, row-major [item][position]. */
export type Labels = Int32Array;

export interface Accuracy {
  /** Fraction of characters right. */
  char_acc: number;
  /** Fraction of items whose every character is right. */
  seq_acc: number;
  /** Fraction right at each position, 0-based. */
  by_position: number[];
}

/** Builds a Probs, refusing data whose size does not match the shape. */
export function makeProbs(n: number, length: number, classes: number, data: Float32Array): Probs {
  for (const [name, v] of [['n', n], ['length', length], ['classes', classes]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new UserError(`probabilities: ${name} must be a non-negative integer, got ${v}`);
  }
  if (data.length !== n * length * classes) {
    throw new UserError(`probabilities: ${n} x ${length} x ${classes} needs ${n * length * classes} values, got ${data.length}`);
  }
  return { n, length, classes, data };
}

/** The most probable class of every (item, position); the lower index wins a tie. */
export function argmax(probs: Probs): Int32Array {
  const { classes, data } = probs;
  const rows = probs.n * probs.length;
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    let best = 0;
    let bestV = data[base];
    for (let c = 1; c < classes; c++) {
      // Strict: the first maximum wins, so ties go to the lower class index.
      if (data[base + c] > bestV) {
        bestV = data[base + c];
        best = c;
      }
    }
    out[r] = best;
  }
  return out;
}

/** Character, sequence and per-position accuracy of predicted class indices against labels. */
export function accuracy(pred: Int32Array, labels: Labels, length: number): Accuracy {
  const n = checkPairs(pred, labels, length);
  const right = new Array<number>(length).fill(0);
  let chars = 0;
  let seqs = 0;
  for (let i = 0; i < n; i++) {
    let all = true;
    for (let j = 0; j < length; j++) {
      if (pred[i * length + j] === labels[i * length + j]) {
        right[j]++;
        chars++;
      } else all = false;
    }
    if (all) seqs++;
  }
  return { char_acc: chars / (n * length), seq_acc: seqs / n, by_position: right.map((r) => r / n) };
}

/** 1 for every item whose whole sequence is right, else 0: the input to a paired comparison. */
export function correctSequences(pred: Int32Array, labels: Labels, length: number): Uint8Array {
  const n = checkPairs(pred, labels, length);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let all = 1;
    for (let j = 0; j < length && all; j++) if (pred[i * length + j] !== labels[i * length + j]) all = 0;
    out[i] = all;
  }
  return out;
}

/** Number of items, after checking that predictions and labels cover the same ones. */
function checkPairs(pred: Int32Array, labels: Labels, length: number): number {
  if (!Number.isInteger(length) || length < 1) throw new UserError(`accuracy: length must be a positive integer, got ${length}`);
  if (pred.length !== labels.length) {
    throw new UserError(`accuracy: ${pred.length} predicted characters but ${labels.length} labels; they must cover the same items`);
  }
  if (pred.length % length !== 0) throw new UserError(`accuracy: ${pred.length} characters is not a whole number of items of length ${length}`);
  // An accuracy over nothing is not 0 or 1; refuse it rather than print NaN.
  if (pred.length === 0) throw new UserError('accuracy: no items to score');
  return pred.length / length;
}

/** A member that cannot join the others: a different shape, or numbers that are not probabilities. */
export class MemberError extends UserError {
  constructor(
    /** Index of the offending member in the list given. */
    readonly member: number,
    message: string,
  ) {
    super(message);
    this.name = 'MemberError';
  }
}

const shapeText = (p: Probs) => `${p.n} x ${p.length} x ${p.classes}`;

/**
 * Refuses an empty list, any member whose shape or size differs from the first's, and any
 * non-finite value (a diverged model's NaNs would otherwise vote for class 0 silently).
 */
export function checkMembers(members: readonly Probs[]): void {
  if (members.length === 0) throw new UserError('an ensemble needs at least one member');
  const first = members[0];
  members.forEach((m, i) => {
    if (m.data.length !== m.n * m.length * m.classes) {
      throw new MemberError(i, `member ${i}: ${shapeText(m)} needs ${m.n * m.length * m.classes} values, it has ${m.data.length}`);
    }
    if (m.n !== first.n || m.length !== first.length || m.classes !== first.classes) {
      throw new MemberError(
        i,
        `member ${i} has predictions of shape ${shapeText(m)} (items x characters x classes), member 0 has ${shapeText(first)}: ` +
          'members must be predictions on the same examples',
      );
    }
    const bad = firstNonFinite(m.data);
    if (bad >= 0) {
      const item = Math.floor(bad / (m.length * m.classes));
      const pos = Math.floor(bad / m.classes) % m.length;
      throw new MemberError(i, `member ${i} has a non-finite probability (${m.data[bad]}) at item ${item}, position ${pos}`);
    }
  });
}

function firstNonFinite(data: Float32Array): number {
  for (let k = 0; k < data.length; k++) {
    // v - v is 0 for finite v and NaN for NaN and +-Infinity; cheaper than Number.isFinite per call.
    if (data[k] - data[k] !== 0) return k;
  }
  return -1;
}

/** Refuses labels that do not cover the members' items or name a class they do not have. */
export function checkLabels(labels: Labels, shape: Probs): void {
  const want = shape.n * shape.length;
  if (labels.length !== want) throw new UserError(`${labels.length} labels for ${shape.n} items of ${shape.length} characters; expected ${want}`);
  for (let r = 0; r < labels.length; r++) {
    if (!(labels[r] >= 0 && labels[r] < shape.classes)) {
      throw new UserError(`label at item ${Math.floor(r / shape.length)}, position ${r % shape.length} is ${labels[r]}, not a class in 0..${shape.classes - 1}`);
    }
  }
}
