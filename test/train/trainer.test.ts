import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCharset } from '../../src/data/charset.ts';
import { loadDataset } from '../../src/data/dataset.ts';
import { generateDataset } from '../../src/data/generate/index.ts';
import { toTrainSet } from '../../src/data/trainset.ts';
import { initBackend } from '../../src/train/backend.ts';
import { fileUrl } from '../../src/train/io.ts';
import { StorageUnavailable } from '../../src/train/durable-write.ts';
import { checkFiles } from '../../src/train/integrity.ts';
import { betterEpoch } from '../../src/train/best-epoch.ts';
import { DEFAULT_PARAMS, type TrainParams } from '../../src/train/params.ts';
import * as tf from '../../src/train/tf.ts';
import { tfl } from '../../src/train/tf.ts';
import { stepLearningRate, TrainingAborted, trainTrial, type EpochMetrics, type TrainInput } from '../../src/train/trainer.ts';

// A small, learnable task: 2 characters from 4 classes (chance: 25% per character).
const spec = { charset: parseCharset('0-3'), length: 2 };
const shape = { height: 60, width: 200, length: 2, classes: 4 };
let root: string;
let data: TrainInput['data'];
let backend: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sweep-trainer-'));
  backend = (await initBackend('wasm')).backend;
  await generateDataset({ style: 'railway', count: 96, seed: 11, out: join(root, 'train'), spec });
  await generateDataset({ style: 'railway', count: 32, seed: 12, out: join(root, 'val'), spec });
  const train = await loadDataset(join(root, 'train'), { spec });
  const val = await loadDataset(join(root, 'val'), { spec });
  data = { train: toTrainSet(train), val: toTrainSet(val) };
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

const tiny = (p: Partial<TrainParams>): TrainParams => ({
  ...DEFAULT_PARAMS,
  width: 0.0625,
  batch_size: 16,
  micro_batch: 8,
  lr: 0.003,
  dropout: 0.1,
  patience: 10,
  seed: 7,
  ...p,
});

/** Everything an epoch reports except wall-clock measurements. */
const stable = (h: EpochMetrics[]) => h.map(({ images_per_s: _i, seconds: _s, ...rest }) => rest);

describe('trainer', () => {
  it('lowers the loss and beats chance on images it trained on', async () => {
    const epochs: EpochMetrics[] = [];
    const out = join(root, 'learn');
    // Validation on the training images themselves: can the model fit a small set at all?
    const result = await trainTrial({
      params: tiny({ pretrain_epochs: 6, gru_epochs: 0 }),
      backend,
      data: { train: data.train, val: data.train },
      shape,
      outDir: out,
      events: { epochEnd: (m) => void epochs.push(m) },
    });
    expect(epochs).toHaveLength(6);
    expect(epochs[5].loss).toBeLessThan(epochs[0].loss);
    expect(Math.max(...epochs.map((e) => e.char_acc))).toBeGreaterThan(0.3);
    expect(result.val_char_acc).toBeGreaterThan(0.3);
    expect(result.backend).toBe('wasm');
    // The kept epoch is the best by betterEpoch (sequence accuracy, then character accuracy, then loss).
    const kept = epochs.reduce((b, m, i) => (betterEpoch(m, epochs[b]) ? i : b), 0);
    expect(result.best.pretrain?.epoch).toBe(kept);
    // Per-character probabilities for the ensemble: n x length x classes, rows sum to 1.
    const bytes = readFileSync(result.predictions.val);
    const probs = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    expect(probs.length).toBe(96 * 2 * 4);
    expect(probs[0] + probs[1] + probs[2] + probs[3]).toBeCloseTo(1, 4);
  });

  it('resumes a killed trial to the same metrics as an uninterrupted one', async () => {
    // precise_bn: the re-estimated BatchNorm statistics are checkpointed and resume exactly too.
    const params = tiny({ pretrain_epochs: 2, gru_epochs: 2, precise_bn: 32 });
    const logs: string[] = [];
    const straight: EpochMetrics[] = [];
    const a = await trainTrial({
      params, backend, data, shape, outDir: join(root, 'straight'),
      events: { epochEnd: (m) => void straight.push(m), log: (m) => void logs.push(m) },
    });
    expect(logs.some((l) => /gru: copied 16 conv\/BN layers from pretrain epoch/.test(l))).toBe(true);

    // Stop after each of the first three epochs (one crossing the phase boundary), then resume.
    const out = join(root, 'interrupted');
    for (let stopAfter = 0; stopAfter < 3; stopAfter++) {
      const controller = new AbortController();
      await expect(
        trainTrial({ params, backend, data, shape, outDir: out, signal: controller.signal, events: { epochEnd: () => controller.abort() } }),
      ).rejects.toBeInstanceOf(TrainingAborted);
    }
    const b = await trainTrial({ params, backend, data, shape, outDir: join(root, 'interrupted') });
    const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')) as EpochMetrics[];
    expect(stable(history)).toEqual(stable(straight));
    expect(b.val_seq_acc).toBe(a.val_seq_acc);
    expect(b.val_char_acc).toBe(a.val_char_acc);
    expect(b.val_loss).toBe(a.val_loss);
    expect(readFileSync(join(out, 'model', 'weights.bin')).equals(readFileSync(join(root, 'straight', 'model', 'weights.bin')))).toBe(true);
  });

  it('with augmentation, trains on other pixels and still resumes bit-identical', async () => {
    const aug = { aug_rotate: 5, aug_shear: 0.1, aug_scale: 0.05, aug_shift: 2, aug_contrast: 0.2, aug_color: 0.1, aug_noise: 0.03, aug_jpeg: 0.5 };
    const params = tiny({ pretrain_epochs: 2, gru_epochs: 1, ...aug });
    const straight: EpochMetrics[] = [];
    await trainTrial({ params, backend, data, shape, outDir: join(root, 'aug-straight'), events: { epochEnd: (m) => void straight.push(m) } });
    const plain: EpochMetrics[] = [];
    await trainTrial({ params: tiny({ pretrain_epochs: 1, gru_epochs: 0 }), backend, data, shape, outDir: join(root, 'aug-off'), events: { epochEnd: (m) => void plain.push(m) } });
    expect(straight[0].loss).not.toBe(plain[0].loss);

    const out = join(root, 'aug-interrupted');
    for (let stopAfter = 0; stopAfter < 2; stopAfter++) {
      const controller = new AbortController();
      await expect(
        trainTrial({ params, backend, data, shape, outDir: out, signal: controller.signal, events: { epochEnd: () => controller.abort() } }),
      ).rejects.toBeInstanceOf(TrainingAborted);
    }
    await trainTrial({ params, backend, data, shape, outDir: out });
    const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')) as EpochMetrics[];
    expect(stable(history)).toEqual(stable(straight));
    expect(readFileSync(join(out, 'model', 'weights.bin')).equals(readFileSync(join(root, 'aug-straight', 'model', 'weights.bin')))).toBe(true);
  });

  /** The epochs of a 2 + 2 epoch trial with these settings. */
  const twoByTwo = async (p: Partial<TrainParams>, name: string) => {
    const epochs: EpochMetrics[] = [];
    await trainTrial({
      params: tiny({ pretrain_epochs: 2, gru_epochs: 2, ...p }), backend, data, shape, outDir: join(root, name),
      events: { epochEnd: (m) => void epochs.push(m) },
    });
    return epochs;
  };
  /** The same with a constant learning rate, trained once for the tests that compare with it. */
  let constantRun: Promise<EpochMetrics[]> | undefined;
  const constantTwoByTwo = () => (constantRun ??= twoByTwo({}, 'constant'));

  it('aug_after: clean images for the first epochs, augmented ones after', async () => {
    const aug = { aug_rotate: 5, aug_shift: 2, aug_noise: 0.03 };
    const later = await twoByTwo({ ...aug, aug_after: 2 }, 'aug-after');
    const constant = await constantTwoByTwo();
    // Both pretrain epochs saw the images as they are: the same steps as no augmentation at all.
    expect(stable(later.slice(0, 2))).toEqual(stable(constant.slice(0, 2)));
    expect(later[2].loss).not.toBe(constant[2].loss);
  });

  it('decays the learning rate every epoch of each phase, and logs it', async () => {
    const decayed = await twoByTwo({ lr_decay: 0.25 }, 'decayed');
    const constant = await constantTwoByTwo();
    expect(decayed.map((m) => m.lr)).toEqual([0.003, 0.003 * 0.25, 0.003, 0.003 * 0.25]);
    expect(constant.map((m) => m.lr)).toEqual([0.003, 0.003, 0.003, 0.003]);
    // The first epoch trains with lr either way; the second with a quarter of it.
    const { lr: _a, ...first } = stable(decayed)[0];
    const { lr: _b, ...firstConstant } = stable(constant)[0];
    expect(first).toEqual(firstConstant);
    expect(decayed[1].loss).not.toBe(constant[1].loss);
  });

  it('anneals the learning rate along a half cosine over a phase, step by step (lr_cosine)', async () => {
    const p = tiny({ lr_cosine: 1, lr_decay: 0.5 });
    // 4 epochs of 10 steps: step s of 40 trains with lr * 0.5^epoch * (1 + cos(pi s / 40)) / 2.
    expect(stepLearningRate(p, 'pretrain', 0, 0, 4, 10)).toBe(0.003);
    expect(stepLearningRate(p, 'pretrain', 2, 0, 4, 10)).toBeCloseTo(0.003 * 0.25 * 0.5, 12);
    expect(stepLearningRate(p, 'gru', 3, 9, 4, 10)).toBeCloseTo(0.003 * 0.125 * 0.5 * (1 + Math.cos((Math.PI * 39) / 40)), 12);
    expect(stepLearningRate({ ...p, lr_cosine: 0 }, 'gru', 3, 9, 4, 10)).toBe(0.003 * 0.125);
    // 2: the GRU phase anneals, the pretrain phase keeps its epoch rate.
    expect(stepLearningRate({ ...p, lr_cosine: 2 }, 'pretrain', 2, 0, 4, 10)).toBe(0.003 * 0.25);
    expect(stepLearningRate({ ...p, lr_cosine: 2 }, 'gru', 2, 0, 4, 10)).toBeCloseTo(0.003 * 0.25 * 0.5, 12);
    const lrs = Array.from({ length: 40 }, (_, s) => stepLearningRate(p, 'gru', Math.floor(s / 10), s % 10, 4, 10));
    expect(lrs.every((lr, i) => i === 0 || lr < lrs[i - 1])).toBe(true);
    expect(lrs[39]).toBeGreaterThan(0);

    const annealed = await twoByTwo({ lr_cosine: 1 }, 'cosine');
    const gruOnly = await twoByTwo({ lr_cosine: 2 }, 'cosine-gru');
    const constant = await constantTwoByTwo();
    // 96 images in batches of 16: 6 steps an epoch, 12 a phase; the second epoch starts half-way down.
    const half = 0.003 * 0.5 * (1 + Math.cos(Math.PI / 2));
    expect(annealed.map((m) => m.lr)).toEqual([0.003, half, 0.003, half]);
    expect(gruOnly.map((m) => m.lr)).toEqual([0.003, 0.003, 0.003, half]);
    expect(constant.map((m) => m.lr)).toEqual([0.003, 0.003, 0.003, 0.003]);
    // Every step after the first trains with less: the first epoch's loss already differs.
    expect(annealed[0].loss).not.toBe(constant[0].loss);
    // With 2 the pretrain phase trains as without; the GRU phase does not.
    expect(stable(gruOnly).slice(0, 2)).toEqual(stable(constant).slice(0, 2));
    expect(gruOnly[2].loss).not.toBe(constant[2].loss);
  });

  it('re-estimates BatchNorm statistics over training images after each epoch (precise_bn)', async () => {
    const firstBn = async (precise_bn: number, name: string) => {
      const logs: string[] = [];
      const epochs: EpochMetrics[] = [];
      const result = await trainTrial({
        params: tiny({ pretrain_epochs: 1, gru_epochs: 0, precise_bn }), backend, data, shape, outDir: join(root, name),
        events: { log: (m) => void logs.push(m), epochEnd: (m) => void epochs.push(m) },
      });
      const model = await tfl.loadLayersModel(fileUrl(join(result.model_dir, 'model.json')));
      const bn = model.getLayer('block1_bn1');
      const [, , movingMean, movingVar] = bn.getWeights().map((w) => Array.from(w.dataSync()));
      // What block1_bn1 normalizes: block1_conv1's output over every training image.
      const conv = tfl.model({ inputs: model.inputs, outputs: model.getLayer('block1_conv1').output as tfl.SymbolicTensor });
      const sums: tf.Tensor[] = [];
      for await (const b of data.train.batches({ batchSize: 32, shuffle: false, seed: 0, epoch: 0 })) {
        sums.push(tf.tidy(() => {
          const y = conv.predict(tf.tensor4d(b.x, [b.n, shape.height, shape.width, 3])) as tf.Tensor4D;
          return tf.stack([tf.sum(y, [0, 1, 2]), tf.sum(tf.square(y), [0, 1, 2]), tf.fill([y.shape[3]], y.shape[0] * y.shape[1] * y.shape[2])]);
        }));
      }
      const [sum, sq, count] = tf.tidy(() => tf.unstack(tf.addN(sums))).map((t) => Array.from(t.dataSync()));
      tf.dispose(sums);
      model.dispose();
      const mean = sum.map((v, i) => v / count[i]);
      const variance = sq.map((v, i) => v / count[i] - mean[i] ** 2);
      return { movingMean, movingVar, mean, variance, logs, epochs };
    };
    // 96 images at batch_size 16: six equal batches, so the mean of the batch means is the
    // mean over all training images, whatever their order.
    const precise = await firstBn(96, 'precise-bn');
    expect(precise.logs).toContain('pretrain epoch 1: BatchNorm statistics re-estimated over 96 training images');
    precise.mean.forEach((m, i) => expect(precise.movingMean[i]).toBeCloseTo(m, 3));
    // The mean of within-batch variances: at most the variance over all images, and near it.
    precise.variance.forEach((v, i) => {
      expect(precise.movingVar[i]).toBeLessThanOrEqual(v * 1.0001 + 1e-6);
      expect(precise.movingVar[i]).toBeGreaterThan(v * 0.8);
    });
    // Without it, six momentum-0.99 updates leave the moving mean near its initial 0.
    const moving = await firstBn(0, 'moving-bn');
    expect(moving.logs.some((l) => /BatchNorm statistics/.test(l))).toBe(false);
    const off = moving.mean.map((m, i) => Math.abs(moving.movingMean[i] - m));
    expect(Math.max(...off)).toBeGreaterThan(0.01);
    // Training reads no moving statistic: the epoch trained the same either way.
    expect(precise.epochs[0].loss).toBe(moving.epochs[0].loss);
  });

  it('refuses to resume a checkpoint made with other parameters', async () => {
    await expect(
      trainTrial({ params: tiny({ pretrain_epochs: 2, gru_epochs: 2, lr: 0.01 }), backend, data, shape, outDir: join(root, 'straight') }),
    ).rejects.toThrow(/other parameters/);
  });

  describe('a damaged checkpoint', () => {
    // Three pretrain epochs and one GRU epoch; stopped after pretrain epoch 2, whose checkpoint
    // is then damaged: the trial resumes from epoch 1's and ends exactly as an undisturbed run.
    const params = tiny({ pretrain_epochs: 3, gru_epochs: 1, seed: 0 });
    let straight: Promise<{ weights: Buffer; history: EpochMetrics[] }> | undefined;
    const undisturbed = () =>
      (straight ??= (async () => {
        const history: EpochMetrics[] = [];
        const out = join(root, 'undamaged');
        await trainTrial({ params, backend, data, shape, outDir: out, events: { epochEnd: (m) => void history.push(m) } });
        return { weights: readFileSync(join(out, 'model', 'weights.bin')), history };
      })());

    it.each([
      ['a truncated weights file', (dir: string) => truncateSync(join(dir, 'weights.bin'), 10), /weights\.bin: 10 bytes where \d+ were written/],
      ['a flipped byte', (dir: string) => {
        const f = join(dir, 'optimizer.bin');
        const b = readFileSync(f);
        b[b.length >> 1] ^= 0x01;
        writeFileSync(f, b);
      }, /optimizer\.bin: its contents changed since it was written/],
      ['a missing file', (dir: string) => unlinkSync(join(dir, 'model.json')), /model\.json: missing/],
    ])('%s: falls back to the previous good checkpoint and ends with the same weights', async (name, damage, problem) => {
      const out = join(root, `damaged-${name.replace(/\W+/g, '-')}`);
      for (let stopAfter = 0; stopAfter < 2; stopAfter++) {
        const controller = new AbortController();
        await expect(trainTrial({ params, backend, data, shape, outDir: out, signal: controller.signal, events: { epochEnd: () => controller.abort() } })).rejects.toBeInstanceOf(
          TrainingAborted,
        );
      }
      const state = JSON.parse(readFileSync(join(out, 'checkpoints', 'state.json'), 'utf8')) as { checkpoint: string; previous: string };
      expect([state.checkpoint, state.previous]).toEqual(['pretrain-e0002', 'pretrain-e0001']);
      damage(join(out, 'checkpoints', 'pretrain-e0002'));

      const logs: string[] = [];
      const resumedHistory: EpochMetrics[] = [];
      await trainTrial({ params, backend, data, shape, outDir: out, events: { log: (m) => void logs.push(m), resumed: (h) => void resumedHistory.push(...h) } });
      expect(logs.find((l) => l.startsWith('checkpoint pretrain-e0002 is damaged'))).toMatch(problem);
      expect(logs.find((l) => l.startsWith('checkpoint pretrain-e0002 is damaged'))).toMatch(/moved aside to .*\.damaged-pretrain-e0002-/);
      expect(logs).toContain('resuming from the latest intact checkpoint, pretrain-e0001 (1 epoch(s) kept)');
      expect(resumedHistory).toHaveLength(1);
      // Kept for inspection.
      expect(readdirSync(join(out, 'checkpoints')).some((e) => e.startsWith('.damaged-pretrain-e0002-'))).toBe(true);
      const ref = await undisturbed();
      const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')) as EpochMetrics[];
      expect(stable(history)).toEqual(stable(ref.history));
      expect(readFileSync(join(out, 'model', 'weights.bin')).equals(ref.weights)).toBe(true);
    });

    it('with no intact checkpoint left, starts the trial again and says so', async () => {
      const out = join(root, 'damaged-all');
      const controller = new AbortController();
      await expect(trainTrial({ params, backend, data, shape, outDir: out, signal: controller.signal, events: { epochEnd: () => controller.abort() } })).rejects.toBeInstanceOf(TrainingAborted);
      truncateSync(join(out, 'checkpoints', 'pretrain-e0001', 'weights.bin'), 0);
      const logs: string[] = [];
      await trainTrial({ params, backend, data, shape, outDir: out, events: { log: (m) => void logs.push(m) } });
      expect(logs).toContain('no intact checkpoint is left: the trial starts again from its first epoch');
      expect(readFileSync(join(out, 'model', 'weights.bin')).equals((await undisturbed()).weights)).toBe(true);
    });
  });

  describe('a full disk', () => {
    // The trial's directory on a small tmpfs, filled after the first epoch so that the second
    // epoch's checkpoint cannot be written. Mounting needs root (as on CI and here).
    const params = tiny({ pretrain_epochs: 2, gru_epochs: 1, seed: 3 });
    let mnt = '';
    let reference: Buffer;
    const fill = () => {
      const fd = openSync(join(mnt, 'filler'), 'w');
      try {
        const chunk = Buffer.alloc(1 << 20, 1);
        for (;;) writeSync(fd, chunk);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
      } finally {
        closeSync(fd);
      }
    };
    beforeAll(async () => {
      mnt = mkdtempSync(join(tmpdir(), 'sweep-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt]);
      const out = join(root, 'full-reference');
      await trainTrial({ params, backend, data, shape, outDir: out });
      reference = readFileSync(join(out, 'model', 'weights.bin'));
    });
    afterAll(() => {
      if (mnt) execFileSync('umount', [mnt]);
      delete process.env.SWEEP_DISK_WAIT_S;
    });

    it('waits for space to return, then goes on: the trial ends as an undisturbed run', async () => {
      process.env.SWEEP_DISK_WAIT_S = '60';
      const out = join(mnt, 'returns');
      const logs: string[] = [];
      let freed = false;
      await trainTrial({
        params, backend, data, shape, outDir: out,
        events: {
          epochEnd: (_m, step) => void (step === 0 && fill()),
          log: (m) => {
            logs.push(m);
            if (!freed && /ENOSPC/.test(m)) {
              freed = true;
              setTimeout(() => rmSync(join(mnt, 'filler')), 1500);
            }
          },
        },
      });
      expect(logs.find((l) => /ENOSPC/.test(l))).toMatch(/^checkpoint pretrain-e0002: ENOSPC \(no space left on the device\) writing \/.*sweep-full-\w+\/returns\/checkpoints\/pretrain-e0002; retrying in 1\.0 s \(for up to 60 s\)$/);
      expect(logs.some((l) => /^checkpoint pretrain-e0002: written after \d+ failed attempt\(s\)$/.test(l))).toBe(true);
      expect(readFileSync(join(out, 'model', 'weights.bin')).equals(reference)).toBe(true);
    });

    it('gives up after SWEEP_DISK_WAIT_S with the path that is full; the previous checkpoint stays loadable and the trial resumes to the same end', async () => {
      process.env.SWEEP_DISK_WAIT_S = '2';
      const out = join(mnt, 'stays-full');
      const err = await trainTrial({ params, backend, data, shape, outDir: out, events: { epochEnd: (_m, step) => void (step === 0 && fill()) } }).catch((e) => e);
      expect(err).toBeInstanceOf(StorageUnavailable);
      expect((err as Error).message).toMatch(/^cannot write \/.*sweep-full-\w+\/stays-full\/checkpoints\/pretrain-e0002: ENOSPC \(no space left on the device\) for \d+ s; the trial goes back to the queue/);
      const state = JSON.parse(readFileSync(join(out, 'checkpoints', 'state.json'), 'utf8')) as { checkpoint: string };
      expect(state.checkpoint).toBe('pretrain-e0001');
      expect(checkFiles(join(out, 'checkpoints', 'pretrain-e0001'), ['model.json', 'weights.bin'])).toEqual([]);
      expect(existsSync(join(out, 'checkpoints', 'pretrain-e0002'))).toBe(false); // the half-written one is gone
      rmSync(join(mnt, 'filler'));
      await trainTrial({ params, backend, data, shape, outDir: out });
      expect(readFileSync(join(out, 'model', 'weights.bin')).equals(reference)).toBe(true);
    });
  });
});
