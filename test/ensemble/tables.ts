/** Hand-made probability tables for the ensemble tests. */
import { makeProbs, type Probs } from '../../src/ensemble/probs.ts';

/** A Probs from rows[item][position][class]. */
export function table(rows: number[][][]): Probs {
  const n = rows.length;
  const length = rows[0]?.length ?? 0;
  const classes = rows[0]?.[0]?.length ?? 0;
  return makeProbs(n, length, classes, Float32Array.from(rows.flat(2)));
}

/** A table of one character per item: rows[item][class]. */
export function chars(rows: number[][]): Probs {
  return table(rows.map((r) => [r]));
}

export const labelsOf = (xs: number[]) => Int32Array.from(xs);
