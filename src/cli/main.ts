import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, UserError } from '../util/errors.ts';

/**
 * Each command lives in its own file under src/cli/ and exports a yargs CommandModule.
 * Handlers set `process.exitCode` or throw; a UserError exits 2, anything else 1.
 */
const commands: Array<() => Promise<{ default: CommandModule<any, any> }>> = [
  () => import('./train.ts'),
  () => import('./data.ts'),
  () => import('./plan.ts'),
  () => import('./db.ts'),
  () => import('./launch.ts'),
  () => import('./worker.ts'),
  () => import('./status.ts'),
  () => import('./show.ts'),
  () => import('./cancel.ts'),
  () => import('./wandb.ts'),
  () => import('./ensemble.ts'),
  () => import('./export.ts'),
  () => import('./predict.ts'),
  () => import('./eval.ts'),
];

export async function main(argv: string[]): Promise<number> {
  const modules = await Promise.all(commands.map(async (load) => (await load()).default));
  let failed: unknown = null;
  const parser = yargs(argv)
    .scriptName('sweep')
    .usage('$0 <command> [options]')
    .strict()
    .demandCommand(1, 'Name a command; `sweep --help` lists them.')
    .epilogue('Exit codes: 0 ok, 1 failure, 2 bad input (file, key or value named in the message).')
    // Throwing stops yargs there: a missing positional must not reach its command's handler.
    .fail((msg, err) => {
      throw err ?? new UserError(msg);
    })
    .help()
    .version(false);
  for (const m of modules) parser.command(m);
  try {
    await parser.parseAsync();
  } catch (err) {
    failed = err;
  }
  if (failed) {
    const err = failed as Error;
    if (err instanceof UserError) {
      process.stderr.write(`sweep: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    process.stderr.write(`sweep: ${err?.stack ?? String(err)}\n`);
    return EXIT_FAILURE;
  }
  return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
}
