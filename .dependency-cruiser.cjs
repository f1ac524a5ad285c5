/**
 * The layer order of src/ (docs/architecture.md): an import goes down this list, never up, and
 * never in a cycle. Folders on one line are one layer and may import each other (as long as no
 * cycle results); src/index.ts, the library's entry, sits with cli.
 *
 *   cli (and src/index.ts)
 *   scheduler, ensemble, report
 *   worker
 *   track
 *   sweep, data
 *   train
 *   infra
 *   util
 *
 *   npm run lint:layers
 */
const LAYERS = [['cli'], ['scheduler', 'ensemble', 'report'], ['worker'], ['track'], ['sweep', 'data'], ['train'], ['infra'], ['util']];

const folders = (layers) => layers.flat().join('|');

const upward = LAYERS.slice(1).map((layer, i) => ({
  name: `layer-${layer.join('-')}`,
  comment: `${layer.join(', ')} may not import a layer above it (${folders(LAYERS.slice(0, i + 1)).replace(/\|/g, ', ')})`,
  severity: 'error',
  from: { path: `^src/(${folders([layer])})/` },
  to: { path: `^src/((${folders(LAYERS.slice(0, i + 1))})/|index\\.ts$)` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: 'no-circular',
      comment: 'modules of src/ import each other in no cycle',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'src-stays-in-src',
      comment: 'src/ does not import bench/, test/ or support/',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(bench|test|support)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^src/infra/generated/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
