// The compiled CLI: src/ as JavaScript in dist/ (same tree, so paths like ../../prisma still
// hold), because loading tsx costs more CPU than most commands need. Built after `npm install`
// / `npm ci` (postinstall) and by `npm run build`; bin/sweep.mjs uses it when it is up to date
// and otherwise runs src/ through tsx, so a checkout being edited needs no build step.
//
//   node bin/dist.mjs           build (a failure warns and exits 0: the CLI then runs src/)
//   node bin/dist.mjs --strict  build; a failure exits 1
//   node bin/dist.mjs --check   exit 0 when dist/ is up to date, else 1 (says why)
//
// Up to date means: dist/.built names the time the last complete build started, and no file or
// directory under src/, nor tsconfig.json or tsconfig.build.json, was modified since. Editing,
// adding, deleting or renaming a file changes its own or its directory's mtime, and git writes
// the files it checks out, so a stat of each (about a hundred, a millisecond or two) suffices;
// no file is read. A tree copied with its old mtimes kept (cp -p, tar) is not noticed: rebuild.
// The build type-checks nothing (noCheck; `tsc --noEmit -p .` does that) and only emits.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const DIST = path.join(root, 'dist');
const STAMP = path.join(DIST, '.built');
const SRC = path.join(root, 'src');
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json'].map((f) => path.join(root, f));

/** Why dist/ is not up to date, or null when it is. */
export function staleness() {
  let built;
  try {
    built = JSON.parse(readFileSync(STAMP, 'utf8')).started;
  } catch {
    return 'dist/ was not built (or its build did not finish)';
  }
  if (typeof built !== 'number') return 'dist/.built names no build time';
  for (const f of CONFIGS) if (statSync(f, { throwIfNoEntry: false })?.mtimeMs > built) return `${path.relative(root, f)} changed since`;
  const newer = newerUnder(SRC, built);
  return newer ? `${path.relative(root, newer)} changed since` : null;
}

/** The first file or directory under `dir` (itself included) modified after `time`, if any. */
function newerUnder(dir, time) {
  if (statSync(dir).mtimeMs > time) return dir;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const n = newerUnder(p, time);
      if (n) return n;
    } else if (statSync(p).mtimeMs > time) {
      return p;
    }
  }
  return null;
}

/** Compiles src/ into dist/; returns null, or why it did not. */
export async function build() {
  if (!existsSync(SRC)) return 'no src/ here yet'; // e.g. a Docker layer that installs before copying the sources
  let tsc;
  try {
    tsc = path.join(path.dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');
  } catch {
    return 'typescript is not installed (an install without dev dependencies)';
  }
  const started = Date.now();
  rmSync(DIST, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) return `tsc exited with ${r.status ?? r.signal}`;
  await vendor();
  writeFileSync(`${STAMP}.tmp`, `${JSON.stringify({ started, at: new Date(started).toISOString() })}\n`);
  renameSync(`${STAMP}.tmp`, STAMP);
  return null;
}

/**
 * Pure-JavaScript packages every command start loads, each as one bundled file in dist/vendor/,
 * and dist/'s imports of them pointed there: loading yargs, zod or yaml as their dozens of
 * modules costs several times the CPU of one file (bench/cli.ts). Only what `import` names
 * changes; src/ (tests, tsx) keeps importing the packages. Without esbuild (it comes with tsx)
 * dist/ keeps the plain imports.
 */
const VENDORED = ['yargs', 'yaml', 'zod'];

/** A module re-exporting every name Node's own import of `pkg` gives (CommonJS ones included). */
async function reexports(pkg) {
  const names = Object.keys(await import(pkg));
  const named = names.filter((n) => n !== 'default');
  return [
    `import * as m from ${JSON.stringify(pkg)};`,
    ...named.map((n, i) => `const v${i} = m[${JSON.stringify(n)}];`),
    `export { ${named.map((n, i) => `v${i} as ${JSON.stringify(n)}`).join(', ')} };`,
    ...(names.includes('default') ? ['export default m.default;'] : []),
  ].join('\n');
}

async function vendor() {
  let esbuild;
  try {
    const require = createRequire(import.meta.url);
    esbuild = createRequire(require.resolve('tsx'))('esbuild');
  } catch {
    return;
  }
  for (const pkg of VENDORED) {
    esbuild.buildSync({
      stdin: { contents: await reexports(pkg), resolveDir: root, loader: 'js', sourcefile: `vendor-${pkg}.js` },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Bundled CommonJS (yaml) requires Node's built-ins; give it a require.
      banner: { js: "import { createRequire as vendorRequire } from 'node:module'; const require = vendorRequire(import.meta.url);" },
      outfile: path.join(DIST, 'vendor', `${pkg}.js`),
      logLevel: 'error',
    });
  }
  const names = VENDORED.join('|');
  const spec = new RegExp(`(\\bfrom\\s*|\\bimport\\s*\\(\\s*)(['"])(${names})\\2`, 'g');
  const rewrite = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (p !== path.join(DIST, 'vendor')) rewrite(p);
      } else if (e.name.endsWith('.js')) {
        const text = readFileSync(p, 'utf8');
        const rel = path.relative(dir, path.join(DIST, 'vendor')).split(path.sep).join('/');
        const out = text.replace(spec, (_, lead, q, name) => `${lead}${q}${rel.startsWith('.') ? rel : `./${rel}`}/${name}.js${q}`);
        if (out !== text) writeFileSync(p, out);
      }
    }
  };
  rewrite(DIST);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  if (process.argv.includes('--check')) {
    const why = staleness();
    if (why) console.error(`bin/dist.mjs: dist/ is not up to date: ${why}; \`npm run build\` rebuilds it`);
    process.exit(why ? 1 : 0);
  }
  const t0 = Date.now();
  const failed = await build();
  if (failed) {
    console.warn(`bin/dist.mjs: dist/ not built: ${failed}; the CLI runs src/ through tsx (slower to start)`);
    process.exit(process.argv.includes('--strict') ? 1 : 0);
  }
  console.log(`bin/dist.mjs: built dist/ in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
