/**
 * Choosing and starting the TensorFlow.js backend a trainer runs on.
 *
 *   auto            tfjs-node-gpu, then tfjs-node, then wasm, then cpu: the first that loads
 *   tensorflow-gpu  @tensorflow/tfjs-node-gpu (libtensorflow with CUDA)      backend 'tensorflow'
 *   tensorflow      @tensorflow/tfjs-node (libtensorflow, CPU)              backend 'tensorflow'
 *   wasm            @tensorflow/tfjs-backend-wasm (XNNPACK, one thread)     backend 'wasm'
 *   cpu             @tensorflow/tfjs-backend-cpu (plain JS, slowest)        backend 'cpu'
 *
 * The two tfjs-node packages are optional dependencies: they download libtensorflow when
 * installed and often cannot be. They are imported at run time through a variable specifier, so
 * this file loads (and type-checks) without them.
 *
 * Things that matter here, each checked against 4.22.0:
 *  - Importing the wasm (or node) backend registers it with a higher priority than cpu, so it
 *    would become the default on the first op. We always setBackend + ready() before returning.
 *  - In Node the wasm binaries are read from disk. We point setWasmPaths at the package's dist/
 *    directory (a plain file path works in Node) so it does not depend on the bundle location.
 *  - tfjs-wasm runs single-threaded in Node (no worker threads there): one process, one core.
 *  - tfjs-layers must use the same tfjs-core module as we do (otherwise `instanceof Tensor` fails
 *    inside layers); we check that both resolve to one file.
 *  - tfjs-layers' Node bundle registers its own copy of every gradient when it is first loaded,
 *    so it is loaded before our wasm training gradients are registered, never after.
 *  - Prod mode is left off: in 4.22 the PROD flag only silences tfjs' warnings and logs (NaN
 *    checks are tied to DEBUG, which is off by default), so it costs nothing to leave off and
 *    keeps warnings such as a backend failing to initialise visible. Loss NaN is checked by the
 *    trainer.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { nativeKernels } from './native-kernels.ts';
import { registerWasmTrainingKernels } from './wasm-kernels.ts';

export type BackendChoice = 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

export interface ActiveBackend {
  /** The tfjs backend actually active: 'tensorflow', 'wasm' or 'cpu'. */
  backend: string;
  /** What was asked for. */
  choice: BackendChoice;
  /** The npm package that provides the backend. */
  package: string;
  /** Why this backend: what loaded, and for 'auto' why the ones before it did not. */
  reason: string;
  tf: typeof tf;
}

type Concrete = Exclude<BackendChoice, 'auto'>;

interface Candidate {
  choice: Concrete;
  package: string;
  backend: string;
  install: string;
}

const TFJS_VERSION = '4.22.0';

const CANDIDATES: readonly Candidate[] = [
  {
    choice: 'tensorflow-gpu',
    package: '@tensorflow/tfjs-node-gpu',
    backend: 'tensorflow',
    install:
      `npm install @tensorflow/tfjs-node-gpu@${TFJS_VERSION} (Linux x86_64 with an NVIDIA GPU, ` +
      'CUDA 11.2 and cuDNN 8.1; the install downloads libtensorflow, so it needs internet access)',
  },
  {
    choice: 'tensorflow',
    package: '@tensorflow/tfjs-node',
    backend: 'tensorflow',
    install: `npm install @tensorflow/tfjs-node@${TFJS_VERSION} (the install downloads libtensorflow, so it needs internet access)`,
  },
  {
    choice: 'wasm',
    package: '@tensorflow/tfjs-backend-wasm',
    backend: 'wasm',
    install: `npm install @tensorflow/tfjs-backend-wasm@${TFJS_VERSION}`,
  },
  {
    choice: 'cpu',
    package: '@tensorflow/tfjs-backend-cpu',
    backend: 'cpu',
    install: `npm install @tensorflow/tfjs-backend-cpu@${TFJS_VERSION}`,
  },
];

const require = createRequire(import.meta.url);

/**
 * Loads and activates a backend. Throws, for an explicit choice, an Error that says what is
 * missing and how to install it. Calling it again with the same choice is cheap and harmless.
 */
export async function initBackend(choice: BackendChoice, log: (msg: string) => void = () => {}): Promise<ActiveBackend> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new Error(`Unknown backend '${String(choice)}'; expected one of ${BACKEND_CHOICES.join(', ')}.`);
  }
  await loadLayers();

  if (choice !== 'auto') {
    const candidate = CANDIDATES.find((c) => c.choice === choice)!;
    const reason = await activate(candidate, false);
    log(`backend: ${candidate.backend} (${candidate.package}): ${reason}`);
    return { backend: tf.getBackend(), choice, package: candidate.package, reason, tf };
  }

  const skipped: string[] = [];
  for (const candidate of CANDIDATES) {
    try {
      const reason = await activate(candidate, true);
      log(`backend auto: chose ${candidate.backend} (${candidate.package}): ${reason}`);
      const why = [...skipped, `${shortName(candidate.package)}: ${reason}`].join('; ');
      return { backend: tf.getBackend(), choice, package: candidate.package, reason: why, tf };
    } catch (err) {
      const why = err instanceof BackendUnavailable ? err.short : (err as Error).message;
      skipped.push(`${shortName(candidate.package)}: ${why}`);
      log(`backend auto: ${shortName(candidate.package)}: ${why}`);
    }
  }
  throw new Error(`No TensorFlow.js backend could be started. ${skipped.join('; ')}`);
}

/** An explicit backend could not be started; `short` is the cause alone, for auto's log. */
export class BackendUnavailable extends Error {
  constructor(
    readonly short: string,
    message: string,
  ) {
    super(message);
    this.name = 'BackendUnavailable';
  }
}

function shortName(pkg: string): string {
  return pkg.replace('@tensorflow/', '');
}

/** Loads the package, selects its backend and waits until it is ready. Returns why it is fine. */
async function activate(c: Candidate, auto: boolean): Promise<string> {
  const fail = (short: string): BackendUnavailable =>
    new BackendUnavailable(short, `Backend '${c.choice}' is not available: ${short}. Install it with: ${c.install}`);

  let mod: Record<string, unknown>;
  try {
    mod = await importOptional(c.package);
  } catch (err) {
    throw fail(describeImportError(c.package, err));
  }

  if (c.choice === 'wasm') {
    const setWasmPaths = mod.setWasmPaths as (prefix: string) => void;
    setWasmPaths(wasmDir());
  }

  if (tf.findBackendFactory(c.backend) == null) {
    throw fail(`${c.package} loaded but did not register the '${c.backend}' backend`);
  }
  // setBackend resolves false (and tfjs warns with the cause) when initialisation fails. When the
  // backend is already initialised it only switches to it, so a second call is cheap.
  if (!(await tf.setBackend(c.backend))) {
    throw fail(`the '${c.backend}' backend failed to initialise (tfjs printed the cause above)`);
  }
  await tf.ready();

  if (c.backend === 'wasm') registerWasmTrainingKernels(tf);

  if (c.choice === 'tensorflow-gpu') {
    const gpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
    if (!gpu) {
      const short = 'libtensorflow loaded but sees no GPU (CUDA 11.2 / cuDNN 8.1 libraries missing, or no NVIDIA GPU)';
      // An explicit GPU request must not silently train on the CPU. For auto, TensorFlow on the
      // CPU is still the fastest choice, so auto accepts it and says so.
      if (auto) return `${short}; running TensorFlow on the CPU`;
      throw fail(short);
    }
    return 'loaded, using the GPU';
  }
  if (c.backend === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const native = nativeKernels();
    return (
      `loaded (${simd ? 'SIMD' : 'no SIMD'}, single-threaded in Node: one core per process; training kernels registered; ` +
      `native conv kernels ${native.reason})`
    );
  }
  return 'loaded';
}

async function loadLayers(): Promise<void> {
  await import('@tensorflow/tfjs-layers');
  assertOneTfjsCore();
}

/**
 * tfjs-layers and the backends must resolve '@tensorflow/tfjs-core' to the module we import.
 * Two copies share the engine (it lives on a global) but not the Tensor class, which breaks
 * layers in confusing ways; say so plainly instead.
 */
function assertOneTfjsCore(): void {
  const ours = require.resolve('@tensorflow/tfjs-core');
  for (const pkg of ['@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu']) {
    let theirs: string;
    try {
      theirs = createRequire(require.resolve(pkg)).resolve('@tensorflow/tfjs-core');
    } catch {
      continue; // not installed: nothing to conflict with
    }
    if (theirs !== ours) {
      throw new Error(
        `Two copies of @tensorflow/tfjs-core are installed: ${ours} and ${theirs} (used by ${pkg}). ` +
          `Pin every @tensorflow package to ${TFJS_VERSION} and run \`npm dedupe\`.`,
      );
    }
  }
}

function wasmDir(): string {
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + path.sep;
}

/** A run-time import TypeScript does not resolve, so the optional packages need no types. */
async function importOptional(specifier: string): Promise<Record<string, unknown>> {
  const name: string = specifier;
  return (await import(name)) as Record<string, unknown>;
}

function describeImportError(pkg: string, err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const first = String(e?.message ?? err).split('\n')[0];
  if ((e?.code === 'ERR_MODULE_NOT_FOUND' || e?.code === 'MODULE_NOT_FOUND') && first.includes(pkg)) {
    return `not installed (${first})`;
  }
  return `failed to load (${first})`;
}
