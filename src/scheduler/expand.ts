/**
 * Sweep -> trials. Pure: the same spec always gives the same trials with the same ids.
 * Each trial's params are the train-block defaults overlaid with the values swept for it.
 */
import { trainHyperparameters, type SweepSpec } from '../sweep/schema.ts';
import { expandGrid } from './grid.ts';
import { sampleRandom } from './random.ts';
import type { PlannedTrial } from '../sweep/planned-trial.ts';
import { trialId } from './trial-id.ts';

export type { PlannedTrial, TrialParams } from '../sweep/planned-trial.ts';

/** Grid (first run_cap points when set) or random (run_cap draws), with ids. */
export function expandSweep(spec: SweepSpec): PlannedTrial[] {
  const swept = spec.method === 'grid' ? expandGrid(spec, spec.run_cap) : sampleRandom(spec);
  const defaults = trainHyperparameters(spec.train);
  return swept.map((values, index) => {
    const params = { ...defaults, ...values };
    const seed = typeof values.seed === 'number' ? values.seed : spec.seed;
    return { id: trialId(spec.name, params, seed), index, params, seed };
  });
}
