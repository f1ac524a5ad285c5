/** The sweep file: schema, loading with positions for errors, distributions. */
export { loadSweepFile, parseSweep } from './parse.ts';
export { SweepFileError, type SweepProblem } from './errors.ts';
export {
  TRAINER_PARAMS,
  TRAIN_HYPERPARAMETERS,
  trainHyperparameters,
  DISTRIBUTION_NAMES,
  type SweepSpec,
  type TrainDefaults,
  type ParamSpec,
  type LeafParamSpec,
  type NestedParamSpec,
  type EarlyTerminate,
  type GenerateSpec,
  type DataSourceSpec,
  type Method,
  type SweepFileOptions,
  type SweepMetric,
  type Goal,
  DEFAULT_METRIC,
  BOOKKEEPING_PREFIX,
} from './schema.ts';
export { leaves, gridSize, type Leaf } from './space.ts';
