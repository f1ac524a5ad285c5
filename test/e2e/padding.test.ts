/**
 * The report's next step, 5x5 kernels: a W&B-format grid over kernel_size [3, 5] is refused
 * under the report's padding (naming `padding: same`), and with `padding: same` it plans,
 * trains on real workers, and its 5x5 trial reads images through an exported reader.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, testEnv, writeFile, type TestEnv } from './helpers.ts';

let t: TestEnv;

const grid = (padding: string | null) =>
  [
    'name: kernels',
    'method: grid',
    'metric: {name: val_seq_acc, goal: maximize}',
    'train:',
    '  generate: {style: railway, count: 32, seed: 1}',
    '  val_fraction: 0.25',
    '  width: 0.0625',
    '  pretrain_epochs: 1',
    '  gru_epochs: 1',
    '  batch_size: 16',
    '  backend: wasm',
    ...(padding ? [`  padding: ${padding}`] : []),
    'parameters:',
    '  kernel_size:',
    '    values: [3, 5]',
    '',
  ].join('\n');

beforeAll(async () => {
  t = await testEnv('pad');
});
afterAll(async () => {
  await t?.cleanup();
});

describe('padding: same', () => {
  it('refuses kernel 5 under the report padding, naming padding: same', async () => {
    const file = writeFile(t.dir, 'report.yaml', grid(null));
    const r = await runCli(['plan', file], t.env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('report.yaml:14:');
    expect(r.stderr).toMatch(/parameters\.kernel_size\.values\[1\]: 5 is not a valid kernel_size: must be an integer from 1 to 4 under padding: report .*set `padding: same`/);
  });

  it('plans, trains and reads with 5x5 kernels', async () => {
    const file = writeFile(t.dir, 'same.yaml', grid('same'));
    const plan = await runCli(['plan', file, '--json'], t.env);
    expect(plan.code).toBe(0);
    const run = await runCli(['launch', file, '--workers', '2', '--json'], t.env, { timeoutMs: 240_000 });
    if (run.code !== 0) console.error(run.stderr);
    expect(run.code).toBe(0);
    const db = await t.db();
    let five: string;
    try {
      const trials = await db.prisma.trial.findMany({ orderBy: { index: 'asc' } });
      expect(trials.map((x) => [x.status, (x.params as Record<string, unknown>).kernel_size, (x.params as Record<string, unknown>).padding])).toEqual([
        ['finished', 3, 'same'],
        ['finished', 5, 'same'],
      ]);
      five = trials[1]!.id;
    } finally {
      await db.close();
    }
    const out = path.join(t.dir, 'reader-k5');
    const e = await runCli(['export', five, '--out', out], t.env);
    if (e.code !== 0) console.error(e.stderr);
    expect(e.code).toBe(0);
    const manifest = JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.members[0].params).toMatchObject({ kernel_size: 5, padding: 'same' });
    const data = path.join(t.home, 'data', 'railway-32-s1');
    const images = readdirSync(data).filter((f) => f.endsWith('.png')).slice(0, 3).map((f) => path.join(data, f));
    const p = await runCli(['predict', out, ...images, '--json', '--backend', 'wasm'], t.env);
    if (p.code !== 0) console.error(p.stderr);
    expect(p.code).toBe(0);
    const read = JSON.parse(p.stdout) as { results: Array<{ text: string }> };
    expect(read.results.map((r) => r.text)).toEqual(read.results.map(() => expect.stringMatching(/^[0-9a-z]{6}$/)));
  }, 300_000);
});
