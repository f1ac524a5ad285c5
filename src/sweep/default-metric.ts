/**
 * What ranks trials when the sweep file names no metric: the report's headline number. Apart
 * from schema.ts so that what only reads stored sweeps (`sweep status`) need not load the
 * sweep file's schema.
 */
import type { SweepMetric } from './schema.ts';

export const DEFAULT_METRIC: SweepMetric = { name: 'val_seq_acc', goal: 'maximize' };
