import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { labelSpec } from '../../src/data/charset.ts';
import { DEFAULT_SHAPE } from '../../src/train/shape.ts';
import { generatedDir } from '../../src/worker/data.ts';

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
