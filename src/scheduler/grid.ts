/**
 * Grid search: the full Cartesian product of every parameter's values.
 *
 * Order (stable, documented): parameters in sorted key order (nested groups sorted within,
 * depth first), as wandb/sweeps does; the last parameter varies fastest, as itertools.product.
 * Values in the order the file lists them (int_uniform ascending, q_uniform as numpy.arange).
 * Trials are produced lazily, so a run_cap takes the first N of a large grid cheaply.
 */
import type { ParamSpec, SweepSpec } from '../sweep/schema.ts';
import { gridAxes } from '../sweep/space.ts';
import type { TrialParams } from './trial-id.ts';

export function setPath(target: TrialParams, path: readonly string[], value: unknown): void {
  let obj = target;
  for (const key of path.slice(0, -1)) {
    const next = obj[key];
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) obj = next as TrialParams;
    else obj = obj[key] = {};
  }
  obj[path[path.length - 1]] = value;
}

/** The grid points in order, lazily. */
export function* iterateGrid(parameters: Record<string, ParamSpec>): Generator<TrialParams> {
  const dims = gridAxes(parameters);
  const total = dims.reduce((n, { axis }) => n * axis.length, 1);
  for (let i = 0; i < total; i++) {
    const params: TrialParams = {};
    // Mixed-radix digits of i, last dimension fastest; fill in key order.
    const digits = new Array<number>(dims.length);
    let rest = i;
    for (let d = dims.length - 1; d >= 0; d--) {
      const len = dims[d].axis.length;
      digits[d] = rest % len;
      rest = Math.floor(rest / len);
    }
    dims.forEach(({ path, axis }, d) => setPath(params, path, axis.at(digits[d])));
    yield params;
  }
}

/** Every grid point in order (the first `limit` when given). Pure. */
export function expandGrid(spec: Pick<SweepSpec, 'parameters'>, limit = Infinity): TrialParams[] {
  const out: TrialParams[] = [];
  if (limit <= 0) return out;
  for (const params of iterateGrid(spec.parameters)) {
    out.push(params);
    if (out.length >= limit) break;
  }
  return out;
}
