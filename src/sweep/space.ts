/**
 * The space a sweep's parameters span: its leaves in the order grid search and random sampling
 * walk them, and the number of grid points. Pure.
 *
 * Order (stable, documented): parameters in sorted key order (nested groups sorted within,
 * depth first), as wandb/sweeps does.
 */
import { canonicalJson } from '../util/canonical-json.ts';
import { gridAxis, type GridAxis } from './distributions.ts';
import type { LeafParamSpec, ParamSpec } from './param-schema.ts';

/** A non-nested parameter and where it goes in the trial's params. */
export interface Leaf {
  path: string[];
  spec: LeafParamSpec;
}

const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Leaves in sorted key order, depth first. */
export function leaves(parameters: Record<string, ParamSpec>, prefix: string[] = []): Leaf[] {
  const out: Leaf[] = [];
  for (const name of Object.keys(parameters).sort(byKey)) {
    const spec = parameters[name];
    if (spec.distribution === 'nested') out.push(...leaves(spec.parameters, [...prefix, name]));
    else out.push({ path: [...prefix, name], spec });
  }
  return out;
}

/** The grid's axes in order: one per leaf, its values de-duplicated as trial ids see them. */
export function gridAxes(parameters: Record<string, ParamSpec>): Array<{ path: string[]; axis: GridAxis }> {
  return leaves(parameters).map(({ path, spec }) => ({ path, axis: gridAxis(spec, canonicalJson) }));
}

/** Number of grid points (may exceed 2^53 for absurd grids; only compared with limits). */
export function gridSize(parameters: Record<string, ParamSpec>): number {
  return gridAxes(parameters).reduce((n, { axis }) => n * axis.length, 1);
}
