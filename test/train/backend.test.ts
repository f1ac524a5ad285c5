/**
 * Backend choice. The optional tfjs-node packages are absent on the machines this runs on (they
 * download libtensorflow at install time); where one is installed, the test expects it to load.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { initBackend, BACKEND_CHOICES, type BackendChoice } from '../../src/train/backend.ts';

const require = createRequire(import.meta.url);
const installed = (pkg: string): boolean => {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
};
const hasNode = installed('@tensorflow/tfjs-node');
const hasNodeGpu = installed('@tensorflow/tfjs-node-gpu');

describe('initBackend', () => {
  it('wasm: active, SIMD reported, training kernels registered; a second call is harmless', async () => {
    const logs: string[] = [];
    const first = await initBackend('wasm', (m) => logs.push(m));
    expect(first.backend).toBe('wasm');
    expect(first.choice).toBe('wasm');
    expect(first.package).toBe('@tensorflow/tfjs-backend-wasm');
    expect(first.tf.getBackend()).toBe('wasm');
    expect(first.reason).toMatch(/single-threaded/);
    // stored with every run
    expect(first.reason).toMatch(/native conv kernels (loaded \(|disabled by SWEEP_NATIVE=0|not built)/);
    if (process.env.CI === 'true' || process.env.SWEEP_REQUIRE_NATIVE === '1') expect(first.reason).toMatch(/native conv kernels loaded \(/);
    expect(first.tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
    expect(logs).toHaveLength(1);

    const again = await initBackend('wasm');
    expect(again.backend).toBe('wasm');
    expect(again.tf).toBe(first.tf);
    const t = again.tf.add(again.tf.tensor([1, 2]), 1);
    expect(Array.from(t.dataSync())).toEqual([2, 3]);
    t.dispose();
  });

  it('cpu, then back to wasm: switching is allowed', async () => {
    expect((await initBackend('cpu')).backend).toBe('cpu');
    expect((await initBackend('wasm')).backend).toBe('wasm');
  });

  it.skipIf(hasNode)('tensorflow without @tensorflow/tfjs-node: says what to install', async () => {
    await expect(initBackend('tensorflow')).rejects.toThrow(/not installed.*npm install @tensorflow\/tfjs-node@4\.22\.0/s);
  });

  it.skipIf(hasNodeGpu)('tensorflow-gpu without @tensorflow/tfjs-node-gpu: says what to install, and CUDA/cuDNN', async () => {
    const err = await initBackend('tensorflow-gpu').catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/npm install @tensorflow\/tfjs-node-gpu@4\.22\.0/);
    expect((err as Error).message).toMatch(/CUDA 11\.2/);
    expect((err as Error).message).toMatch(/cuDNN 8\.1/);
  });

  it.skipIf(hasNode || hasNodeGpu)('auto: logs why each tfjs-node package was skipped and picks wasm', async () => {
    const logs: string[] = [];
    const r = await initBackend('auto', (m) => logs.push(m));
    expect(r.backend).toBe('wasm');
    expect(r.choice).toBe('auto');
    expect(logs[0]).toMatch(/^backend auto: tfjs-node-gpu: not installed \(Cannot find package '@tensorflow\/tfjs-node-gpu'/);
    expect(logs[1]).toMatch(/^backend auto: tfjs-node: not installed \(Cannot find package '@tensorflow\/tfjs-node'/);
    expect(logs[2]).toMatch(/^backend auto: chose wasm/);
    expect(r.reason).toMatch(/tfjs-node-gpu: not installed.*tfjs-node: not installed.*tfjs-backend-wasm: loaded/s);
  });

  it('rejects an unknown choice with the list of valid ones', async () => {
    await expect(initBackend('gpu' as BackendChoice)).rejects.toThrow(new RegExp(BACKEND_CHOICES.join(', ')));
  });

  it('tfjs-layers and the backends resolve the same tfjs-core module as we do', async () => {
    const ours = require.resolve('@tensorflow/tfjs-core');
    for (const pkg of ['@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu']) {
      expect(createRequire(require.resolve(pkg)).resolve('@tensorflow/tfjs-core')).toBe(ours);
    }
    // And at run time: a layer applied to our tensors (instanceof checks inside layers).
    const { tf } = await initBackend('wasm');
    const tfl = await import('@tensorflow/tfjs-layers');
    const out = tfl.layers.dense({ units: 2, kernelInitializer: 'ones' }).apply(tf.ones([1, 3])) as import('@tensorflow/tfjs-core').Tensor;
    expect(out).toBeInstanceOf(tf.Tensor);
    expect(Array.from(out.dataSync())).toEqual([3, 3]);
  });
});
