import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
});
