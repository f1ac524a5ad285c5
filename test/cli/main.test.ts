import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { COMMANDS, commandName, main } from '../../src/cli/main.ts';

/** Runs main() with stdout and stderr captured. */
async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
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
    return { code: await main(argv), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    process.exitCode = undefined;
  }
}

describe('the command table', () => {
  it.each(COMMANDS.map((e) => [commandName(e), e] as const))('%s: the line agrees with its module', async (_name, entry) => {
    const mod = (await entry.load()).default;
    expect({ command: mod.command, describe: mod.describe }).toEqual({ command: entry.command, describe: entry.describe });
  });

  it('the database-only commands load no TensorFlow.js with their module (launch runs workers)', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const names = COMMANDS.filter((e) => e.databaseOnly).map(commandName).filter((n) => n !== 'launch');
    expect(names).toContain('status');
    // In a fresh process: each module in turn, then whether tfjs-core has set up its globals.
    const script = `for (const n of ${JSON.stringify(names)}) { await import('./src/cli/' + n + '.ts'); if (globalThis._tfGlobals) { console.log(n); process.exit(0); } } console.log('none');`;
    const first = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' }).trim();
    expect(first, 'the first database-only command whose module loads TensorFlow.js').toBe('none');
  }, 60_000);

  it('names each command once', () => {
    const names = COMMANDS.map(commandName);
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('main() loads the command yargs runs', () => {
  it('when an option before it hides which one it is', async () => {
    // `--out plan` is an unknown option taking `plan` as its value: yargs runs `status`, whose
    // own strict check then refuses --out.
    const r = await run(['--out', 'plan', 'status', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^sweep: Unknown arguments?: .*bogus/);
  });

  it('a wrong first word runs nothing and exits 2', async () => {
    const r = await run(['bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Unknown argument: bogus');
  });

  it("when the first word is an option's value", async () => {
    // Before plan's options are known, `--json true` reads as an unknown option and its value:
    // the first word is `true`, yet yargs runs plan (and `--json` is plan's boolean).
    const r = await run(['--json', 'true', 'plan', 'sweeps/grid.yaml']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ sweep: 'grid', method: 'grid' });
  });
});
