/**
 * sweep as a library: read CAPTCHAs with an exported reader (`sweep ensemble export`,
 * `sweep export`) or a trained model's directory.
 *
 *   import { loadReader } from 'sweep';
 *   const reader = await loadReader('readers/grid');
 *   const { results, problems } = await reader.read(['a.png', 'b.png']);
 *   reader.dispose();
 */
export { loadReader, type LoadReaderOptions, type ReadOptions, type ReadOutput, type ReadResult, type Reader } from './ensemble/reader.ts';
export { evaluateReader, type EvalReport } from './ensemble/evaluate.ts';
export type { Manifest, ManifestMember } from './ensemble/manifest.ts';
