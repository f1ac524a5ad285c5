/** A trial as a sweep's expansion plans it (scheduler/expand.ts), before it is stored. */

/** A trial's params: the train-block defaults and its swept values; nested groups as objects. */
export type TrialParams = Record<string, unknown>;

export interface PlannedTrial {
  /** trialId(sweep name, params, seed): database key and BullMQ job id. */
  id: string;
  /** Position in the expansion (grid order, or random draw order). */
  index: number;
  /** Train-block defaults + swept values; nested groups kept as objects. */
  params: TrialParams;
  /** The sweep's seed, unless `seed` is itself a swept parameter. */
  seed: number;
}
