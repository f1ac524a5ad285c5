import { describe, expect, it } from 'vitest';
import { nextSteps } from '../../src/cli/launch.ts';
import type { SweepStatus } from '../../src/track/store.ts';

const status = (name: string, bestIndex: number | null) => ({ name, best: bestIndex === null ? null : { index: bestIndex } }) as unknown as SweepStatus;

describe('nextSteps', () => {
  it('names the best trial, the status and the ensemble commands for this sweep', () => {
    expect(nextSteps(status('quickstart', 1))).toEqual([
      'next:',
      '  npx sweep show quickstart#1          # the best trial: every epoch, its result, its files',
      '  npx sweep status quickstart          # where the sweep stands (from any shell, at any time)',
      '  npx sweep ensemble build quickstart  # a voting ensemble of its best trials',
    ]);
  });

  it('leaves out show when no trial has a metric, and quotes a name the shell would split', () => {
    const lines = nextSteps(status("my sweep's", null));
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(/^ {2}npx sweep status 'my sweep'\\''s' +# /);
  });
});
