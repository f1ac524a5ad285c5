import { describe, expect, it } from 'vitest';
import { labelProblem, encodeLabel } from '../../src/data/charset.ts';
import { DEFAULT_SHAPE, labelSpec, readLabel, shapeFromParams, shapeParams, type LabelCase } from '../../src/train/shape.ts';

const DIGITS_UPPER = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGITS_LOWER = '0123456789abcdefghijklmnopqrstuvwxyz';

describe('labelSpec: the charset in its case', () => {
  it.each<[string, LabelCase, string]>([
    ['0-9a-z', 'lower', DIGITS_LOWER],
    ['0-9A-Z', 'lower', DIGITS_UPPER],
    ['0-9A-Z', 'upper', DIGITS_UPPER],
    ['0-9a-z', 'upper', DIGITS_UPPER],
    ['0-9A-Z', 'fold', DIGITS_UPPER],
    ['0-9a-z', 'fold', DIGITS_LOWER],
    ['2-9ABCDEFGHJKMNPQRSTUVWXYZ', 'fold', '23456789ABCDEFGHJKMNPQRSTUVWXYZ'],
  ])('%s under %s', (charset, c, expected) => {
    expect(labelSpec(4, charset, c).charset).toBe(expected);
  });

  it('lower is the default and leaves case out', () => {
    expect(labelSpec(6, '0-9a-z')).toEqual({ charset: DIGITS_LOWER, length: 6 });
    expect(labelSpec(4, '0-9A-Z', 'fold')).toEqual({ charset: DIGITS_UPPER, length: 4, case: 'fold' });
  });

  it.each<[string, LabelCase, string]>([
    ['a-zA-Z', 'fold', "charset 'a-zA-Z' holds both 'a' and 'A'; under case: fold they are one class, so give each letter once"],
    ['abA', 'upper', "charset 'abA' holds a letter in both cases; under case: upper they are one character"],
    ['z-a', 'lower', "charset range 'z-a' runs backwards"],
    ['aa', 'lower', "charset 'aa' repeats a character"],
    ['', 'lower', 'charset is empty'],
  ])('refuses %s under %s', (charset, c, message) => {
    expect(() => labelSpec(4, charset, c)).toThrow(message);
  });
});

describe('reading labels', () => {
  const fold = labelSpec(4, '0-9A-Z', 'fold');
  const upper = labelSpec(4, '0-9A-Z', 'upper');
  const foldLower = labelSpec(4, '0-9a-z', 'fold');

  it.each([
    ['a3k9', fold, 'A3K9'],
    ['A3k9', fold, 'A3K9'],
    ['A3K9', fold, 'A3K9'],
    ['A3K9', foldLower, 'a3k9'],
    ['a3k9', upper, 'a3k9'],
    ['a3k9', { charset: DIGITS_LOWER, length: 4 }, 'a3k9'],
  ])('%s reads as %s', (label, spec, read) => {
    expect(readLabel(label, spec)).toBe(read);
  });

  it('fold encodes either case as one class; upper refuses small letters, naming the case', () => {
    expect(encodeLabel('a3k9', fold)).toEqual(encodeLabel('A3K9', fold));
    expect(encodeLabel('A3K9', fold)).toEqual([10, 3, 20, 9]);
    expect(labelProblem('a3k9', fold)).toBeNull();
    expect(labelProblem('A3K9', upper)).toBeNull();
    expect(labelProblem('a3K9', upper)).toBe(
      "label 'a3K9' has character 'a' outside the charset '" + DIGITS_UPPER + "' (labels are upper case under case: upper; case: fold reads either case)",
    );
    expect(labelProblem('A3K9Z', fold)).toBe("label 'A3K9Z' has 5 characters, expected 4");
    expect(labelProblem('A3K_', fold)).toMatch(/has character '_' outside the charset/);
  });
});

describe('the shape in a trial\'s params', () => {
  it('leaves every default out, so a default-shape trial keeps its params', () => {
    expect(shapeParams(DEFAULT_SHAPE)).toEqual({});
    expect(shapeParams({ height: 60, width: 200, label: labelSpec(6, '0-9a-z', 'lower') })).toEqual({});
    expect(shapeParams({ height: 50, width: 200, label: labelSpec(6, '0-9a-z') })).toEqual({ image_height: 50 });
  });

  it('round-trips a declared shape', () => {
    const shape = { height: 50, width: 160, label: labelSpec(4, '0-9A-Z', 'fold') };
    const params = shapeParams(shape);
    expect(params).toEqual({ image_height: 50, image_width: 160, label_length: 4, label_charset: DIGITS_UPPER, label_case: 'fold' });
    expect(shapeFromParams({ lr: 0.001, ...params })).toEqual(shape);
    expect(shapeFromParams({ lr: 0.001 })).toEqual(DEFAULT_SHAPE);
    expect(shapeFromParams(null)).toEqual(DEFAULT_SHAPE);
  });
});
