import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCharset } from '../../src/data/charset.ts';
import { generateDataset } from '../../src/data/generate/index.ts';

const run = promisify(execFile);
let root: string;

async function sweep(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/sweep.mjs', ...args], { env: { ...process.env, CI: 'true' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'sweep-cli-train-'));
  const spec = { charset: parseCharset('0-3'), length: 2 };
  await generateDataset({ style: 'railway', count: 24, seed: 1, out: join(root, 'train'), spec });
  await generateDataset({ style: 'railway', count: 8, seed: 2, out: join(root, 'test'), spec });
  await generateDataset({ style: 'railway', count: 16, seed: 3, out: join(root, 'small'), spec, size: { height: 50, width: 160 } });
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('sweep train', () => {
  it('trains both phases and prints the final metrics as JSON', async () => {
    const out = join(root, 'run');
    const r = await sweep([
      'train', '--data', join(root, 'train'), '--test', join(root, 'test'), '--out', out, '--backend', 'wasm', '--json',
      '--charset', '0-3', '--length', '2',
      '--set', 'width=0.0625', '--set', 'pretrain_epochs=1', '--set', 'gru_epochs=1', '--set', 'batch_size=8', '--set', 'val_fraction=0.25',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.backend).toBe('wasm');
    for (const key of ['val_seq_acc', 'val_char_acc', 'test_seq_acc', 'test_char_acc', 'images_per_s']) {
      expect(typeof result[key], key).toBe('number');
    }
    expect(result.epochs_run).toEqual({ pretrain: 1, gru: 1 });
    expect(existsSync(join(out, 'model', 'model.json'))).toBe(true);
    expect(existsSync(join(out, 'predictions', 'test.probs.f32'))).toBe(true);
    expect(r.stderr).toMatch(/pretrain 1: loss/);
  });

  it('refuses a value outside its domain with exit 2 and writes nothing', async () => {
    const out = join(root, 'bad');
    const r = await sweep(['train', '--data', join(root, 'train'), '--out', out, '--set', 'dropout=1.5', '--charset', '0-3', '--length', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/dropout must be a number in \[0, 1\), got 1.5/);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a parameter name the trainer does not know with exit 2, naming the nearest, and writes nothing', async () => {
    const out = join(root, 'typo');
    const r = await sweep(['train', '--data', join(root, 'train'), '--out', out, '--set', 'widht=0.1', '--charset', '0-3', '--length', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--set widht: unknown parameter `widht`; did you mean `width`?');
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a --config sweep file with an unknown parameter name, at its line', async () => {
    const config = join(root, 'typo.yaml');
    writeFileSync(config, 'method: grid\nparameters:\n  dropuot: {value: 0.3}\n');
    const out = join(root, 'typo-config');
    const r = await sweep(['train', '--data', join(root, 'train'), '--out', out, '--config', config, '--charset', '0-3', '--length', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${config}:3:3: parameters.dropuot: unknown parameter \`dropuot\`; did you mean \`dropout\`?`);
    expect(existsSync(out)).toBe(false);
  });

  it('takes the image size and labels from a --config sweep file\'s train block', async () => {
    const config = join(root, 'shape.yaml');
    writeFileSync(
      config,
      'method: grid\nparameters: {lr: {value: 0.001}}\ntrain:\n  image: {height: 50, width: 160}\n  label: {length: 2, charset: 0-3}\n' +
        '  width: 0.0625\n  pretrain_epochs: 1\n  gru_epochs: 1\n  batch_size: 8\n  val_fraction: 0.25\n',
    );
    const out = join(root, 'shape');
    const r = await sweep(['train', '--data', join(root, 'small'), '--out', out, '--config', config, '--backend', 'wasm', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'label.json'), 'utf8'))).toEqual({ length: 2, charset: '0123', case: 'lower' });
    const model = JSON.parse(readFileSync(join(out, 'model', 'model.json'), 'utf8'));
    expect(JSON.stringify(model.modelTopology)).toContain('[null,50,160,3]');

    // Without the config, the same images are the wrong size: each file is named.
    const plain = await sweep(['train', '--data', join(root, 'small'), '--out', join(root, 'plain'), '--charset', '0-3', '--length', '2']);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('000000.png: is 160x50 (width x height), expected 200x60');
  });
});
