import { describe, expect, it } from 'vitest';
import { DEFAULT_PARAMS, parseSetArgs, resolveParams } from '../../src/train/params.ts';
import { UserError } from '../../src/util/errors.ts';

describe('--set', () => {
  it('reads numbers and booleans', () => {
    expect(parseSetArgs(['width=0.25', 'kernel_size=3', 'x_tag=baseline', 'x_flag=true'])).toEqual({ width: 0.25, kernel_size: 3, x_tag: 'baseline', x_flag: true });
  });

  it.each([
    ['widht=0.1', '--set widht: unknown parameter `widht`; did you mean `width`? The trainer takes: kernel_size,'],
    ['dropuot=0.3', '--set dropuot: unknown parameter `dropuot`; did you mean `dropout`?'],
    ['epochs=3', '--set epochs: unknown parameter `epochs`; The trainer takes:'],
  ])('refuses the unknown name in %s', (pair, message) => {
    let err: unknown;
    try {
      parseSetArgs([pair]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(2);
    expect((err as Error).message.startsWith(message)).toBe(true);
  });

  it('names every unknown key, one per line', () => {
    expect(() => parseSetArgs(['widht=0.1', 'lr=0.01', 'dropuot=0.3'])).toThrow(/^--set widht: .*\n--set dropuot: /);
  });
});

describe('resolveParams', () => {
  it('fills defaults and keeps bookkeeping (x_) values away from the trainer', () => {
    expect(resolveParams({ width: 0.5, x_tag: 'a', x_group: { b: 1 } })).toEqual({ ...DEFAULT_PARAMS, width: 0.5 });
  });

  it('passes through a name stored before unknown names were refused', () => {
    expect(resolveParams({ legacy: 1 })).toEqual({ ...DEFAULT_PARAMS, legacy: 1 });
  });
});
