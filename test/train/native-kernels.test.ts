/**
 * Building and loading the native kernels: what is loaded and what is refused (the kernels'
 * results are tested against cpu in wasm-kernels.test.ts). Each case builds or copies into a
 * temporary directory; the project's own native/build is only read.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeKernels } from '../../src/train/native-kernels.ts';

const NATIVE = path.resolve('native');
// The addon is optional; CI (and SWEEP_REQUIRE_NATIVE=1) requires it, elsewhere these tests need a build.
const required = process.env.CI === 'true' || process.env.SWEEP_REQUIRE_NATIVE === '1';
const built = nativeKernels().addon != null;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A copy of native/ (sources, and the build when `withBuild`) in a temporary directory. */
function copy(withBuild: boolean): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sweep-native-'));
  dirs.push(dir);
  for (const f of ['kernels.cc', 'build.mjs']) copyFileSync(path.join(NATIVE, f), path.join(dir, f));
  if (withBuild) cpSync(path.join(NATIVE, 'build'), path.join(dir, 'build'), { recursive: true });
  return dir;
}

function build(dir: string, env: Record<string, string> = {}, ...args: string[]) {
  return spawnSync(process.execPath, [path.join(dir, 'build.mjs'), ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}

describe.skipIf(!built && !required)('loading', () => {
  it('loads the build made from this kernels.cc and says for which CPU', () => {
    const s = nativeKernels(copy(true));
    expect(s.reason).toMatch(/^loaded \(/);
    expect(typeof s.addon?.conv2d).toBe('function');
  });

  it('checks its arguments: sizes against shapes, array types, integers', () => {
    const { addon } = nativeKernels();
    const f = (n: number) => new Float32Array(n);
    // x [1,3,3,1], filter [2,2,1,1], out [1,2,2,1]
    expect(() => addon!.conv2d(f(9), f(4), null, f(4), 1, 3, 3, 1, 2, 2, 1, 2, 2, 0, 0, 0)).not.toThrow();
    expect(() => addon!.conv2d(f(9), f(4), null, f(5), 1, 3, 3, 1, 2, 2, 1, 2, 2, 0, 0, 0)).toThrow(/conv2d: array sizes do not match/);
    expect(() => addon!.conv2d(f(9), new Float64Array(4) as never, null, f(4), 1, 3, 3, 1, 2, 2, 1, 2, 2, 0, 0, 0)).toThrow(/expected a Float32Array/);
    expect(() => addon!.conv2d(f(9), f(4), null, f(4), 1, 3, 3, 1, 2, 2, 1, 2, -2, 0, 0, 0)).toThrow(/non-negative integer/);
    expect(() => addon!.channelBinary(f(6), f(4), f(6), 0, 4, 0)).toThrow(/channelBinary: array sizes/);
    expect(() => (addon!.batchNorm as (...a: unknown[]) => void)(f(6), f(3))).toThrow(/too few arguments/);
  });

  it('refuses a build made from another kernels.cc', () => {
    const dir = copy(true);
    writeFileSync(path.join(dir, 'kernels.cc'), readFileSync(path.join(dir, 'kernels.cc'), 'utf8') + '\n// changed\n');
    expect(nativeKernels(dir)).toEqual({ addon: null, reason: expect.stringMatching(/stale; run npm run build:native/) });
  });

  it('refuses a binary its manifest does not name, and a manifest it cannot read', () => {
    const dir = copy(true);
    writeFileSync(path.join(dir, 'build', 'sweep_kernels.node'), 'not a binary');
    expect(nativeKernels(dir).reason).toMatch(/not the one its manifest names/);
    const other = copy(true);
    writeFileSync(path.join(other, 'build', 'sweep_kernels.json'), '{"hash": 1}');
    expect(nativeKernels(other).reason).toMatch(/is not a manifest of native\/build.mjs/);
    writeFileSync(path.join(other, 'build', 'sweep_kernels.json'), '{');
    expect(nativeKernels(other)).toEqual({ addon: null, reason: expect.stringMatching(/^unusable build: /) });
  });

  it('refuses a binary without its manifest (a build that did not finish), and a missing build', () => {
    const dir = copy(true);
    rmSync(path.join(dir, 'build', 'sweep_kernels.json'));
    expect(nativeKernels(dir).reason).toMatch(/^not built/);
    expect(nativeKernels(copy(false)).reason).toMatch(/^not built/);
  });

  it('refuses a build for CPU features this machine lacks', () => {
    const dir = copy(true);
    const file = path.join(dir, 'build', 'sweep_kernels.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    writeFileSync(file, JSON.stringify({ ...manifest, requires: [...manifest.requires, 'no_such_feature'] }));
    expect(nativeKernels(dir).reason).toMatch(/this CPU lacks no_such_feature/);
  });

  it('is off with SWEEP_NATIVE=0', () => {
    const before = process.env.SWEEP_NATIVE;
    process.env.SWEEP_NATIVE = '0';
    try {
      expect(nativeKernels(copy(true))).toEqual({ addon: null, reason: 'disabled by SWEEP_NATIVE=0' });
    } finally {
      if (before === undefined) delete process.env.SWEEP_NATIVE;
      else process.env.SWEEP_NATIVE = before;
    }
  });
});

describe.skipIf(!built && !required)('building', () => {
  it('builds, then finds the build up to date', () => {
    const dir = copy(false);
    const first = build(dir);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/built/);
    expect(nativeKernels(dir).reason).toMatch(/^loaded/);
    expect(build(dir).stdout).toMatch(/up to date/);
  });

  it('a failing compiler warns and exits 0 (installs never fail for it), 1 with --strict, and leaves the old build', () => {
    const dir = copy(true);
    const before = readFileSync(path.join(dir, 'build', 'sweep_kernels.node'));
    const cxx = path.join(dir, 'broken-cxx');
    writeFileSync(cxx, '#!/bin/sh\n[ "$1" = --version ] && echo "broken 1.0" && exit 0\necho "kernels.cc:1: error: broken" >&2\nexit 1\n', { mode: 0o755 });
    const loose = build(dir, { CXX: cxx }, '--force');
    expect(loose.status).toBe(0);
    expect(loose.stderr).toMatch(/native training kernels not built: .*broken-cxx failed:\nkernels.cc:1: error: broken/);
    const strict = build(dir, { CXX: cxx }, '--force', '--strict');
    expect(strict.status).toBe(1);
    expect(build(dir, { CXX: path.join(dir, 'no-such-compiler') }).stderr).toMatch(/no C\+\+ compiler/);
    expect(readFileSync(path.join(dir, 'build', 'sweep_kernels.node')).equals(before)).toBe(true);
    expect(existsSync(path.join(dir, 'build', 'sweep_kernels.json'))).toBe(true);
    expect(nativeKernels(dir).reason).toMatch(/^loaded/);
  });
});
