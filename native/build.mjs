// Builds native/kernels.cc into native/build/sweep_kernels.node with the machine's C++ compiler
// (a Node-API addon; no node-gyp, no download). Runs after `npm ci` / `npm install` (postinstall)
// and as `npm run build:native`.
//
// The addon is optional: the wasm backend trains without it (more slowly). A failed build warns
// and exits 0 so an install never fails because of it; `--strict` (npm run build:native) exits 1.
// The output is written to a temporary file and renamed, with a manifest naming the source's hash,
// so a half-built or out-of-date addon is never loaded (src/train/native-kernels.ts checks both).
//
// Flags: -O3, -ffp-contract=off (no fused multiply-adds: results do not depend on the CPU), and on
// x86-64 machines that have them AVX2, FMA and the features that come with them, named one by one
// (compilers older than GCC 11 have no -march=x86-64-v3); elsewhere -march=native. The manifest lists the CPU
// features the binary needs (for a -march=native build, all of the build machine's), checked again
// when it is loaded, so a binary copied to an older CPU is refused instead of crashing.
// SWEEP_NATIVE_MARCH=<arch> builds with -march=<arch> instead (its needs are then the builder's);
// CXX picks the compiler (default g++).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const source = path.join(here, 'kernels.cc');
const outDir = path.join(here, 'build');
const out = path.join(outDir, 'sweep_kernels.node');
const manifestPath = path.join(outDir, 'sweep_kernels.json');
const strict = process.argv.includes('--strict');

/**
 * x86-64 with AVX2 (the x86-64-v3 level but LZCNT, which some virtual machines do not report):
 * /proc/cpuinfo's name for each feature, and the compiler flag for it.
 */
const AVX2 = {
  avx: '-mavx', avx2: '-mavx2', bmi1: '-mbmi', bmi2: '-mbmi2', f16c: '-mf16c', fma: '-mfma',
  movbe: '-mmovbe', xsave: '-mxsave', popcnt: '-mpopcnt', sse4_2: '-msse4.2', ssse3: '-mssse3',
};

function cpuFlags() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    return line ? new Set(line.split(':')[1].trim().split(/\s+/)) : null;
  } catch {
    return null;
  }
}

function nodeInclude() {
  const candidates = [
    process.env.npm_config_nodedir && path.join(process.env.npm_config_nodedir, 'include', 'node'),
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  ].filter(Boolean);
  return candidates.find((d) => existsSync(path.join(d, 'node_api.h')));
}

function giveUp(why) {
  const msg = `native/build.mjs: native training kernels not built: ${why}. The wasm backend trains without them, more slowly.`;
  if (strict) {
    console.error(msg);
    process.exit(1);
  }
  console.warn(msg);
  process.exit(0);
}

if (process.env.SWEEP_NATIVE === '0') giveUp('SWEEP_NATIVE=0');
const include = nodeInclude();
if (!include) giveUp("Node's headers (node_api.h) were not found next to the node binary; set npm_config_nodedir");

const flags = cpuFlags();
let march = process.env.SWEEP_NATIVE_MARCH;
let archFlags;
let requires;
if (!march && process.arch === 'x64' && flags && Object.keys(AVX2).every((f) => flags.has(f))) {
  march = 'x86-64-avx2';
  archFlags = ['-march=x86-64', '-mtune=generic', ...Object.values(AVX2)];
  requires = Object.keys(AVX2);
} else {
  march ||= 'native';
  archFlags = [`-march=${march}`];
  requires = flags ? [...flags].sort() : [];
}
const cxx = process.env.CXX || 'g++';
const args = [
  '-O3',
  ...archFlags,
  '-ffp-contract=off',
  '-std=c++17',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  '-Wall',
  '-Wno-psabi',
  `-I${include}`,
  '-DNODE_GYP_MODULE_NAME=sweep_kernels',
  source,
];

const sourceText = readFileSync(source);
const version = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
if (version.error || version.status !== 0) giveUp(`no C++ compiler (${cxx} --version failed: ${version.error?.message ?? version.stderr.trim()})`);
const compiler = version.stdout.split('\n')[0];
const sha256 = (...parts) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest('hex');
const hash = sha256(sourceText, JSON.stringify(args.slice(0, -1)), compiler);
try {
  const old = JSON.parse(readFileSync(manifestPath, 'utf8'));
  if (old.hash === hash && existsSync(out) && !process.argv.includes('--force')) {
    console.log(`native/build.mjs: up to date (${path.relative(process.cwd(), out)}, ${march})`);
    process.exit(0);
  }
} catch {
  // no manifest yet
}

const tmp = `${out}.${process.pid}.tmp`;
const started = Date.now();
try {
  mkdirSync(outDir, { recursive: true });
} catch (err) {
  giveUp(`cannot create ${outDir}: ${err.message}`);
}
const r = spawnSync(cxx, [...args, '-o', tmp], { encoding: 'utf8' });
if (r.error || r.status !== 0) {
  rmSync(tmp, { force: true });
  const detail = r.error ? r.error.message : (r.stderr || '').trim().split('\n').slice(0, 20).join('\n');
  giveUp(`${cxx} failed${detail ? `:\n${detail}` : ''}`);
}
// The old manifest is removed before the binary is replaced and the new one written after it: a
// crash in between leaves a binary without a manifest, which is read as "not built".
try {
  const binary = sha256(readFileSync(tmp));
  rmSync(manifestPath, { force: true });
  renameSync(tmp, out);
  const manifest = { hash, binary, march, requires, compiler, flags: args.slice(0, -1), built: new Date().toISOString() };
  writeFileSync(`${manifestPath}.tmp`, JSON.stringify(manifest, null, 2) + '\n');
  renameSync(`${manifestPath}.tmp`, manifestPath);
} catch (err) {
  rmSync(tmp, { force: true });
  giveUp(`cannot write ${outDir}: ${err.message}`);
}
console.log(`native/build.mjs: built ${path.relative(process.cwd(), out)} (${march}, ${Date.now() - started} ms)`);
