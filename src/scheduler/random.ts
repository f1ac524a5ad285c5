/**
 * Random search, reproducible: draw k uses its own generator seeded from (sweep seed, k, and
 * the parameter's path), so
 *  - the same seed gives the same trials;
 *  - trial k depends only on (seed, k): raising run_cap appends trials and keeps the old ones;
 *  - adding a parameter leaves the values drawn for the others unchanged.
 * A draw equal to an earlier one is skipped (it would be the same trial: same id), so a small
 * discrete space yields fewer trials than asked for rather than repeats.
 */
import { sample } from '../sweep/distributions.ts';
import type { LeafParamSpec, ParamSpec, SweepSpec } from '../sweep/schema.ts';
import { Rng } from '../util/rng.ts';
import { leaves } from '../sweep/space.ts';
import { setPath } from './grid.ts';
import { canonicalJson, type TrialParams } from './trial-id.ts';

/** Draw k of the sweep: a pure function of (parameters, seed, k). */
export function sampleTrial(parameters: Record<string, ParamSpec>, seed: number, k: number): TrialParams {
  const params: TrialParams = {};
  for (const { path, spec } of leaves(parameters)) {
    const rng = new Rng(`random/${seed}/${k}/${path.join('\u0000')}`);
    setPath(params, path, sample(spec, rng));
  }
  return params;
}

/** Distinct values a leaf can take, when few enough to count (else Infinity). */
function distinctCount(spec: LeafParamSpec): number {
  switch (spec.distribution) {
    case 'constant':
      return 1;
    case 'categorical': {
      const kept = spec.values.filter((_, i) => !spec.probabilities || spec.probabilities[i] > 0);
      return new Set(kept.map(canonicalJson)).size;
    }
    case 'int_uniform':
      return spec.max - spec.min + 1;
    default:
      return Infinity;
  }
}

/**
 * `count` trials (default and upper bound: the sweep's run_cap), distinct, in draw order.
 */
export function sampleRandom(spec: Pick<SweepSpec, 'parameters' | 'seed' | 'run_cap'>, count?: number): TrialParams[] {
  const cap = spec.run_cap ?? Infinity;
  const wanted = Math.min(count ?? cap, cap);
  if (!Number.isFinite(wanted)) throw new Error('sampleRandom needs a count or a run_cap');
  const space = leaves(spec.parameters).reduce((n, { spec: s }) => n * distinctCount(s), 1);
  const target = Math.min(wanted, space);
  const maxDraws = target * 50 + 1000; // only reached for tiny spaces with unlucky draws
  const seen = new Set<string>();
  const out: TrialParams[] = [];
  for (let k = 0; out.length < target && k < maxDraws; k++) {
    const params = sampleTrial(spec.parameters, spec.seed, k);
    const key = canonicalJson(params);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(params);
  }
  return out;
}
