/**
 * A trial's identity: a hash of what defines it (sweep name, params, seed). It is both the
 * database key and the BullMQ job id, so launching a sweep twice, or adding a value to a grid,
 * yields the same ids for the trials that already existed.
 */
import { createHash } from 'node:crypto';

/** A trial's parameters as the trainer sees them; nested groups stay nested objects. */
export type TrialParams = Record<string, unknown>;

/** Hex characters kept from the sha256: 80 bits, no collision in any realistic sweep. */
export const TRIAL_ID_LENGTH = 20;

/**
 * JSON with object keys sorted at every depth, so equal values hash equally whatever the key
 * order. Numbers print as JSON does: YAML's `1` and `1.0` are both the number 1, hence one id.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot hash the non-finite number ${value}`);
    return JSON.stringify(value); // -0 prints as 0
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new Error(`cannot hash a value of type ${typeof value}`);
}

/**
 * sha256 of the canonical JSON of {sweep, params, seed}, first 20 hex characters.
 * (BullMQ refuses job ids that read as integers; 20 hex characters practically never do.)
 */
export function trialId(sweepName: string, params: TrialParams, seed: number): string {
  const text = canonicalJson({ sweep: sweepName, params, seed });
  return createHash('sha256').update(text).digest('hex').slice(0, TRIAL_ID_LENGTH);
}
