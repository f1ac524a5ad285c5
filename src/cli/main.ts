import v8 from 'node:v8';
import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, UserError } from '../util/errors.ts';

/**
 * The commands, one line each. A command lives in its own file under src/cli/ whose default
 * export is a yargs CommandModule (its options and its handler); the line here repeats its
 * `command` and `describe` and says how to load it.
 *
 * Why a table: importing a command's module imports what it uses (TensorFlow.js, Prisma,
 * BullMQ...), so `sweep --help` lists the commands from this table without loading any, and
 * `sweep X ...` loads X's module alone, before yargs runs X's builder (so `sweep X --help`
 * still shows X's options). A command's handler may import its heavy modules itself, with
 * `await import(...)`, so that its `--help` stays quick too.
 *
 * Adding a command: write src/cli/NAME.ts and add its line below, with the same `command` and
 * `describe` as the module's (test/cli/main.test.ts checks that they agree), and
 * `databaseOnly: true` when no TensorFlow.js runs in its process. Nothing else.
 */
export const COMMANDS: readonly CommandEntry[] = [
  { command: 'train', describe: 'Train one trial alone: pretrain the CNN, then the CNN+GRU', load: () => import('./train.ts') },
  { command: 'data <command>', describe: 'Datasets: generate synthetic CAPTCHAs', load: () => import('./data.ts') },
  { command: 'plan <file>', describe: 'Expand a sweep file into its trials and print them (no Redis, no database)', databaseOnly: true, load: () => import('./plan.ts') },
  { command: 'db <command>', describe: 'Database: apply migrations, stop the embedded server', databaseOnly: true, load: () => import('./db.ts') },
  { command: 'launch <file>', describe: "Store a sweep's trials and enqueue them; with --workers N, also train them here", databaseOnly: true, load: () => import('./launch.ts') },
  { command: 'worker', describe: 'Train queued trials on this machine (Redis from REDIS_URL, database from DATABASE_URL)', load: () => import('./worker.ts') },
  { command: 'status [sweep]', describe: 'Trials by state, best so far, throughput, ETA, running trials and failures of each sweep (or of one)', databaseOnly: true, load: () => import('./status.ts') },
  { command: 'show <trial>', describe: 'One trial in full: status, params, epochs per phase, result, artifacts and checkpoints', databaseOnly: true, load: () => import('./show.ts') },
  { command: 'cancel <sweep>', describe: 'Cancel a sweep: drop its queued trials, stop its running ones after their epoch', databaseOnly: true, load: () => import('./cancel.ts') },
  { command: 'wandb <command>', describe: 'Weights & Biases mirror: send the outbox, see what is left', databaseOnly: true, load: () => import('./wandb.ts') },
  { command: 'ensemble <command>', describe: "Build, export and list voting ensembles of a sweep's best trials", databaseOnly: true, load: () => import('./ensemble.ts') },
  { command: 'export <trial>', describe: 'Write one finished trial as a self-contained reader directory', databaseOnly: true, load: () => import('./export.ts') },
  { command: 'predict <reader> [images..]', describe: 'Read CAPTCHA images with an exported reader, a model directory or a finished trial', load: () => import('./predict.ts') },
  { command: 'report <sweep>', describe: 'Write one self-contained HTML report of a sweep: parameters, learning curves, trials, failures, ensembles', load: () => import('./report.ts') },
  // Not databaseOnly, though no TensorFlow.js runs in it: it polls the database every second
  // for hours, so V8's optimised code pays for itself.
  { command: 'dashboard [sweep]', describe: "Serve a sweep's report live on a local web page (updated as epochs arrive), with the queue and the workers", load: () => import('./dashboard.ts') },
  { command: 'eval <reader>', describe: "A reader's accuracy on a labelled dataset: per character, per sequence, by position, confusions", load: () => import('./eval.ts') },
];

export interface CommandEntry {
  /** As in the module: the name, then its positionals (`plan <file>`). */
  command: string;
  /** As in the module: the line `sweep --help` shows. */
  describe: string;
  load: () => Promise<{ default: CommandModule<any, any> }>;
  /**
   * No TensorFlow.js WebAssembly runs in this command's process, only the database's (Prisma's
   * query compiler): V8's baseline compiler is enough for it (see `baselineWasmOnly`).
   */
  databaseOnly?: boolean;
}

/**
 * A command this short never profits from V8 optimising Prisma's query compiler
 * (WebAssembly), which is where most of its CPU went: the baseline compiler alone halves
 * `sweep status`'s CPU (bench/cli.ts). Set before the command's module loads, so before any
 * WebAssembly compiles. Not for the commands that run TensorFlow.js's WebAssembly kernels.
 */
function baselineWasmOnly(entry: CommandEntry | undefined): void {
  if (entry?.databaseOnly) v8.setFlagsFromString('--liftoff-only');
}

/** A command's name: the first word of its `command`. */
export function commandName(entry: Pick<CommandEntry, 'command'>): string {
  return entry.command.split(/\s+/)[0];
}

/** Thrown by a command's stand-in when yargs chose a command whose module is not loaded yet. */
class ModuleNeeded extends Error {
  constructor(readonly entry: CommandEntry) {
    super(`sweep ${commandName(entry)}: its module was not loaded`);
  }
}

/**
 * A loaded command as it is, or a stand-in that lists it in `sweep --help`. yargs runs a
 * command's builder before anything else of that command, and only for the command it chose,
 * so the stand-in's builder is where a wrong guess shows; parsing then starts over with that
 * command's module loaded.
 */
function register(entry: CommandEntry, loaded: ReadonlyMap<CommandEntry, CommandModule<any, any>>): CommandModule<any, any> {
  return (
    loaded.get(entry) ?? {
      command: entry.command,
      describe: entry.describe,
      builder: () => {
        throw new ModuleNeeded(entry);
      },
      handler: () => {},
    }
  );
}

/** The command `argv` most likely runs: its first word that is not an option. */
function likelyCommand(argv: readonly string[]): CommandEntry | undefined {
  const word = argv.find((a) => !a.startsWith('-'));
  return COMMANDS.find((e) => commandName(e) === word);
}

/** Runs the command line; resolves with the error it ended with, or null. */
async function parse(argv: string[], loaded: ReadonlyMap<CommandEntry, CommandModule<any, any>>): Promise<unknown> {
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
  for (const entry of COMMANDS) parser.command(register(entry, loaded));
  try {
    await parser.parseAsync();
    return null;
  } catch (err) {
    if (err instanceof ModuleNeeded) throw err;
    return err;
  }
}

export async function main(argv: string[]): Promise<number> {
  const loaded = new Map<CommandEntry, CommandModule<any, any>>();
  const load = async (entry: CommandEntry) => loaded.set(entry, (await entry.load()).default);
  const guess = likelyCommand(argv);
  baselineWasmOnly(guess);
  if (guess) await load(guess);
  let failed: unknown;
  for (;;) {
    try {
      failed = await parse(argv, loaded);
      break;
    } catch (err) {
      if (!(err instanceof ModuleNeeded) || loaded.has(err.entry)) throw err;
      await load(err.entry);
    }
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
