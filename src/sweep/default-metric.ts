/**
 * What ranks trials when the sweep file names no metric: the report's headline number. Apart
 * from schema.ts so that what only reads stored sweeps (`sweep status`) need not load the
 * sweep file's schema. (Its type is schema.ts's SweepMetric, written out to keep the two
 * files free of a cycle.)
 */
export const DEFAULT_METRIC: { name: string; goal: 'minimize' | 'maximize' } = { name: 'val_seq_acc', goal: 'maximize' };
