import { describe, expect, it } from 'vitest';
import { accuracy, argmax, checkLabels, correctSequences, makeProbs } from '../../src/ensemble/probs.ts';
import { UserError } from '../../src/util/errors.ts';
import { labelsOf, table } from './tables.ts';

describe('argmax', () => {
  it('takes the most probable class of every (item, position), the lower index on a tie', () => {
    const p = table([
      [
        [0.1, 0.7, 0.2],
        [0.4, 0.2, 0.4],
      ],
      [
        [0.3, 0.3, 0.4],
        [0.0, 0.5, 0.5],
      ],
    ]);
    expect(Array.from(argmax(p))).toEqual([1, 0, 2, 1]);
  });
});

describe('accuracy', () => {
  // Three items of two characters: item 0 all right, item 1 wrong at position 1, item 2 wrong at both.
  const labels = labelsOf([1, 2, 0, 0, 3, 3]);
  const pred = Int32Array.from([1, 2, 0, 1, 0, 0]);

  it('counts characters, whole sequences and each position', () => {
    const a = accuracy(pred, labels, 2);
    expect(a.char_acc).toBeCloseTo(3 / 6, 12);
    expect(a.seq_acc).toBeCloseTo(1 / 3, 12);
    expect(a.by_position[0]).toBeCloseTo(2 / 3, 12);
    expect(a.by_position[1]).toBeCloseTo(1 / 3, 12);
  });

  it('marks the items whose whole sequence is right', () => {
    expect(Array.from(correctSequences(pred, labels, 2))).toEqual([1, 0, 0]);
  });

  it('refuses predictions and labels over different items, and an empty set', () => {
    expect(() => accuracy(pred.subarray(0, 4), labels, 2)).toThrow(/4 predicted characters but 6 labels/);
    expect(() => accuracy(pred.subarray(0, 5), labels.subarray(0, 5), 2)).toThrow(/not a whole number of items/);
    expect(() => correctSequences(new Int32Array(0), new Int32Array(0), 2)).toThrow(/no items/);
  });
});

describe('shapes', () => {
  it('makeProbs refuses data of the wrong size, as bad input', () => {
    expect(() => makeProbs(2, 6, 36, new Float32Array(2 * 6 * 36 - 1))).toThrow(UserError);
    expect(() => makeProbs(2, 6, 36, new Float32Array(2 * 6 * 36 - 1))).toThrow(/2 x 6 x 36 needs 432 values, got 431/);
  });

  it('checkLabels refuses a wrong count and a class out of range, naming where', () => {
    const p = table([[[0.5, 0.5]], [[0.5, 0.5]]]);
    expect(() => checkLabels(labelsOf([0]), p)).toThrow(/1 labels for 2 items of 1 characters/);
    expect(() => checkLabels(labelsOf([0, 2]), p)).toThrow(/item 1, position 0 is 2, not a class in 0..1/);
    expect(() => checkLabels(labelsOf([1, 0]), p)).not.toThrow();
  });
});
