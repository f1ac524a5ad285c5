import { describe, expect, it } from 'vitest';
import { betterEpoch, type EpochScore } from '../../src/train/best-epoch.ts';

const e = (val_seq_acc: number, val_char_acc: number | undefined, val_loss: number): EpochScore => ({ val_seq_acc, val_char_acc, val_loss });

describe('betterEpoch', () => {
  it.each([
    ['any epoch beats none', e(0, 0, 9), undefined, true],
    ['higher sequence accuracy wins, whatever the rest', e(0.5, 0.7, 2), e(0.4, 0.9, 1), true],
    ['lower sequence accuracy loses, whatever the rest', e(0.4, 0.9, 1), e(0.5, 0.7, 2), false],
    ['sequence accuracy tied at 0: higher character accuracy wins', e(0, 0.31, 3.2), e(0, 0.12, 3.0), true],
    ['sequence accuracy tied at 0: lower character accuracy loses, even at a lower loss', e(0, 0.12, 3.0), e(0, 0.31, 3.2), false],
    ['both tied: lower loss wins', e(0.2, 0.6, 1.1), e(0.2, 0.6, 1.2), true],
    ['both tied: higher loss loses', e(0.2, 0.6, 1.2), e(0.2, 0.6, 1.1), false],
    ['a full tie is no improvement (patience keeps counting)', e(0.2, 0.6, 1.1), e(0.2, 0.6, 1.1), false],
    ['a best from an older state without character accuracy: loss decides', e(0, 0.5, 1.2), e(0, undefined, 1.1), false],
    ['a best from an older state without character accuracy: lower loss wins', e(0, 0.1, 1.0), e(0, undefined, 1.1), true],
  ])('%s', (_, epoch, best, expected) => {
    expect(betterEpoch(epoch, best)).toBe(expected);
  });
});
