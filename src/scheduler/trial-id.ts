/**
 * A trial's identity: a hash of what defines it (sweep name, params, seed). It is both the
 * database key and the BullMQ job id, so launching a sweep twice, or adding a value to a grid,
 * yields the same ids for the trials that already existed.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../util/canonical-json.ts';

/** A trial's parameters as the trainer sees them; nested groups stay nested objects. */
import type { TrialParams } from '../sweep/planned-trial.ts';

export type { TrialParams } from '../sweep/planned-trial.ts';

/** Hex characters kept from the sha256: 80 bits, no collision in any realistic sweep. */
export const TRIAL_ID_LENGTH = 20;

export { canonicalJson } from '../util/canonical-json.ts';

/**
 * sha256 of the canonical JSON of {sweep, params, seed}, first 20 hex characters.
 * (BullMQ refuses job ids that read as integers; 20 hex characters practically never do.)
 */
export function trialId(sweepName: string, params: TrialParams, seed: number): string {
  const text = canonicalJson({ sweep: sweepName, params, seed });
  return createHash('sha256').update(text).digest('hex').slice(0, TRIAL_ID_LENGTH);
}
