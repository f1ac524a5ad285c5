import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkImage } from '../../src/data/image-check.ts';
import { labelSpec } from '../../src/data/charset.ts';
import { DEFAULT_SHAPE } from '../../src/train/shape.ts';
import { generatedDir, materialize } from '../../src/worker/data.ts';

const env = { SWEEP_HOME: '/h' };
const g = { style: 'railway' as const, count: 300, seed: 1 };
const name = (...args: Parameters<typeof generatedDir>) => path.basename(generatedDir(...args));

describe('where a generated set lives: one directory per look and data shape', () => {
  it('keeps the names of the report\'s shape', () => {
    expect(generatedDir(g, DEFAULT_SHAPE, env)).toBe(path.join('/h', 'data', 'railway-300-s1'));
    expect(name({ ...g, case: 'upper' }, DEFAULT_SHAPE, env)).toBe('railway-300-s1-upper');
    expect(name(g, { ...DEFAULT_SHAPE, label: labelSpec(6, '0-9a-z', 'fold') }, env)).toBe('railway-300-s1');
  });

  it.each([
    [{ height: 50, width: 160, label: labelSpec(4, '0-9A-Z', 'upper') }, 'railway-300-s1-50x160-l4-0-9A-Z'],
    [{ height: 50, width: 160, label: labelSpec(4, '0-9A-Z', 'fold') }, 'railway-300-s1-50x160-l4-0-9A-Z'],
    [{ height: 64, width: 256, label: labelSpec(6, '0-9a-z') }, 'railway-300-s1-64x256'],
    [{ height: 60, width: 200, label: labelSpec(5, '2-9ACEFHKMNPRTWXY') }, 'railway-300-s1-l5-2-9ACEFHKMNPRTW-Y'],
    [{ height: 60, width: 200, label: labelSpec(6, '0-9a-z+') }, expect.stringMatching(/^railway-300-s1-c[0-9a-f]{10}$/)],
  ])('%j -> %s', (shape, expected) => {
    expect(name(g, shape, env)).toEqual(expected);
  });
});

describe('materialize: a generate block makes a set of the sweep\'s shape', () => {
  it('generates 4 capitals on 160x50 images into the shape\'s directory', async () => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'sweep-data-test-'));
    try {
      const shape = { height: 50, width: 160, label: labelSpec(4, '0-9A-Z', 'fold') };
      const dir = await materialize({ generate: { style: 'railway', count: 3, seed: 2 } }, { shape, env: { SWEEP_HOME: home } });
      expect(dir).toBe(path.join(home, 'data', 'railway-3-s2-50x160-l4-0-9A-Z'));
      const rows = readFileSync(path.join(dir, 'labels.csv'), 'utf8').trim().split('\n').slice(1);
      expect(rows).toHaveLength(3);
      for (const row of rows) {
        const [file, label] = row.split(',');
        expect(label).toMatch(/^[0-9A-Z]{4}$/);
        const info = checkImage(readFileSync(path.join(dir, file)));
        expect([info.width, info.height]).toEqual([160, 50]);
      }
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
