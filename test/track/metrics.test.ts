import { describe, expect, it } from 'vitest';
import { accuracyText, bestTrial, type SweepMetric, type ValAccuracy } from '../../src/track/metrics.ts';
import type { SweepStatus } from '../../src/track/store.ts';

const SEQ: SweepMetric = { name: 'val_seq_acc', goal: 'maximize' };
const CHAR: SweepMetric = { name: 'val_char_acc', goal: 'maximize' };
const LOSS: SweepMetric = { name: 'val_loss', goal: 'minimize' };

describe('accuracyText', () => {
  const cases: Array<[SweepMetric, ValAccuracy, string]> = [
    [SEQ, { valCharAcc: 0.31234, valSeqAcc: 0.001 }, 'val_char_acc 0.3123'],
    [CHAR, { valCharAcc: 0.3, valSeqAcc: 0.001 }, 'val_seq_acc 0.0010'],
    [LOSS, { valCharAcc: 0.3, valSeqAcc: 0 }, 'val_char_acc 0.3000 val_seq_acc 0.0000'],
    [LOSS, { valCharAcc: null, valSeqAcc: 0.5 }, 'val_seq_acc 0.5000'],
    [SEQ, { valCharAcc: null, valSeqAcc: null }, ''],
  ];
  it.each(cases)('%j %j -> %j', (metric, acc, text) => {
    expect(accuracyText(metric, acc)).toBe(text);
  });
});

describe('bestTrial', () => {
  const status = (metric: SweepMetric, best: Partial<NonNullable<SweepStatus['best']>>) =>
    ({ metric, best: { trialId: 'abc123', index: 3, value: 0.25, params: {}, seed: 0, status: 'finished', valCharAcc: 0.7, valSeqAcc: 0.25, ...best } }) as unknown as SweepStatus;
  it('puts the character accuracy next to the sweep metric, and marks a running best', () => {
    expect(bestTrial(status(SEQ, {}))).toBe('best: #3 abc123 val_seq_acc 0.2500 val_char_acc 0.7000');
    expect(bestTrial(status(LOSS, { value: 9.5, status: 'running' }))).toBe('best: #3 abc123 val_loss 9.5000 val_char_acc 0.7000 val_seq_acc 0.2500 (running)');
    expect(bestTrial(status(SEQ, { valCharAcc: null }))).toBe('best: #3 abc123 val_seq_acc 0.2500');
  });
});
