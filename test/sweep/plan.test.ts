import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import yargs from 'yargs';
import plan from '../../src/cli/plan.ts';
import { expandSweep } from '../../src/scheduler/expand.ts';
import { loadSweepFile } from '../../src/sweep/index.ts';

/** Runs `fn` with stdout and stderr captured. */
async function capture<T>(fn: () => Promise<T>): Promise<{ result: T; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { result: await fn(), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

afterEach(() => {
  process.exitCode = undefined;
});

// main() loads every command module; until all of them exist in the tree it cannot run.
const mainReady = ['train.ts', 'data.ts'].every((f) => existsSync(`src/cli/${f}`));

describe.skipIf(!mainReady)('sweep plan via main()', () => {
  it('--json prints {sweep, method, count, trials}', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const { result, stdout } = await capture(() => main(['plan', 'sweeps/grid.yaml', '--json']));
    expect(result).toBe(0);
    const body = JSON.parse(stdout);
    const trials = expandSweep(await loadSweepFile('sweeps/grid.yaml'));
    expect(body).toEqual({
      sweep: 'grid',
      method: 'grid',
      count: 16,
      trials: trials.map(({ id, index, params }) => ({ id, index, params })),
    });
  });

  it('a bad file exits 2 with every problem on stderr', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const { result, stderr } = await capture(() => main(['plan', 'test/sweep/fixtures/bad.yaml']));
    expect(result).toBe(2);
    expect(stderr).toContain('test/sweep/fixtures/bad.yaml:4:24: parameters.dropout.values[2]: 1.2 is not a valid dropout');
    expect(stderr).toContain('test/sweep/fixtures/bad.yaml:5:3: parameters.lr: grid search needs a finite list of values');
  });

  it('a parameter name the trainer does not know exits 2, at its line, with the nearest name', async () => {
    const { main } = await import('../../src/cli/main.ts');
    const { result, stderr } = await capture(() => main(['plan', 'test/sweep/fixtures/typo.yaml']));
    expect(result).toBe(2);
    expect(stderr).toContain('test/sweep/fixtures/typo.yaml:5:3: parameters.dropuot: unknown parameter `dropuot`; did you mean `dropout`?');
  });
});

describe('sweep plan (the command module alone)', () => {
  const run = (args: string[]) => capture(() => yargs(args).command(plan).strict().fail(false).parseAsync());

  it('--json output matches expandSweep', async () => {
    const { stdout } = await run(['plan', 'sweeps/random.yaml', '--json']);
    const body = JSON.parse(stdout);
    expect(body.sweep).toBe('random');
    expect(body.method).toBe('random');
    expect(body.count).toBe(20);
    expect(body.trials).toEqual(expandSweep(await loadSweepFile('sweeps/random.yaml')).map(({ id, index, params }) => ({ id, index, params })));
  });

  it('prints a table of the swept parameters and the count', async () => {
    const { stdout } = await run(['plan', 'sweeps/quickstart.yaml']);
    const trials = expandSweep(await loadSweepFile('sweeps/quickstart.yaml'));
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('sweep quickstart: grid, seed 0 (sweeps/quickstart.yaml)');
    expect(lines[1]).toBe('fixed: kernel_size=3 kernel_width=5 alpha=0 dropout=0 precise_bn=1000 batch_size=8 pretrain_epochs=2 gru_epochs=0 patience=2 width=0.125 freeze_epochs=0');
    expect(lines[2].split(/\s+/)).toEqual(['index', 'id', 'lr']);
    expect(lines.slice(3, 5).map((l) => l.split(/\s+/))).toEqual([
      ['0', trials[0].id, '0.002'],
      ['1', trials[1].id, '0.003'],
    ]);
    expect(lines[5]).toBe('2 trials');
  });
});
