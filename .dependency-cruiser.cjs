/**
 * The layer order of src/ (docs/architecture.md): an import goes down this list, never up, and
 * never in a cycle. src/index.ts, the library's entry, sits with cli.
 *
 *   1  cli (and src/index.ts)
 *   2  scheduler, ensemble, report
 *   3  worker
 *   4  track
 *   5  sweep, data
 *   6  train
 *   7  infra
 *   8  util
 *
 * Folders that share a level do not import each other (scheduler does not import ensemble, data
 * does not import sweep, and so on). None does today, and that keeps the levels acyclic between
 * folders, which the module-level cycle rule alone would not: a.ts -> b/x.ts and b/y.ts -> a/z.ts
 * is no cycle of modules but is one of folders. A folder that needs a peer moves down a level,
 * or the shared piece moves down to where both can import it.
 *
 * Also checked: no cycle among the modules of src/, type-only imports included; every module of
 * src/ is in one of the folders above; src/ imports nothing from bench/, test/ or support/ (they
 * may import anything in src/); a relative import resolves (an unresolved one would slip past
 * every rule above).
 *
 *   npm run lint:layers
 */
const LAYERS = [['cli'], ['scheduler', 'ensemble', 'report'], ['worker'], ['track'], ['sweep', 'data'], ['train'], ['infra'], ['util']];

const alt = (names) => names.join('|');
const folderPath = (names) => `^src/(${alt(names)})/`;
/** Any module of src/ that belongs to a layer. */
const IN_A_LAYER = `^src/((${alt(LAYERS.flat())})/|index\\.ts$)`;

const upward = LAYERS.slice(1).map((layer, i) => {
  const above = LAYERS.slice(0, i + 1).flat();
  return {
    name: `layer-${layer.join('-')}`,
    comment: `${layer.join(', ')} may not import a layer above it (${above.join(', ')}, src/index.ts)`,
    severity: 'error',
    from: { path: folderPath(layer) },
    to: { path: `^src/((${alt(above)})/|index\\.ts$)` },
  };
});

const peers = LAYERS.filter((layer) => layer.length > 1).flatMap((layer) =>
  layer.map((folder) => {
    const others = layer.filter((f) => f !== folder);
    return {
      name: `peer-${folder}`,
      comment: `${folder} may not import ${others.join(' or ')}, which share its level`,
      severity: 'error',
      from: { path: folderPath([folder]) },
      to: { path: folderPath(others) },
    };
  }),
);

module.exports = {
  forbidden: [
    ...upward,
    ...peers,
    {
      name: 'no-circular',
      comment: 'modules of src/ import each other in no cycle, not even through type-only imports',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'not-in-a-layer',
      comment: `a module of src/ outside the layer folders (${LAYERS.flat().join(', ')}): add its folder to LAYERS`,
      severity: 'error',
      from: { path: '^src/', pathNot: IN_A_LAYER },
      to: {},
    },
    {
      name: 'to-not-in-a-layer',
      comment: `an import of a module of src/ outside the layer folders (${LAYERS.flat().join(', ')}): add its folder to LAYERS`,
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: IN_A_LAYER },
    },
    {
      name: 'src-stays-in-src',
      comment: 'src/ does not import bench/, test/ or support/',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(bench|test|support)/' },
    },
    {
      name: 'relative-import-resolves',
      comment: 'a relative import in src/ that the layer check could not resolve',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true, path: '^\\.' },
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
