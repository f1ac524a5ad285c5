/**
 * `sweep worker`: take trials from the queue and train them, on this machine, until stopped.
 * SIGINT/SIGTERM: take no more trials; running ones stop after their epoch is checkpointed
 * and go back to the queue (a second signal kills them; they still go back). Exit 0 once
 * stopped cleanly; exit 1 when it stopped because its trials kept failing
 * (--max-consecutive-failures), so a supervisor sees the machine needs attention. Started
 * before Postgres or Redis answer, it waits for them (SWEEP_CONNECT_WAIT_S), then exits 2.
 */
import type { Argv, CommandModule } from 'yargs';
import { BACKEND_CHOICES, type BackendChoice } from '../train/backend.ts';
import { UserError } from '../util/errors.ts';
import { startWorker } from '../worker/worker.ts';

interface WorkerArgs {
  concurrency: number;
  'max-trials'?: number;
  'exit-when-idle': boolean;
  backend?: BackendChoice;
  'max-consecutive-failures'?: number;
}

const command: CommandModule<object, WorkerArgs> = {
  command: 'worker',
  describe: 'Train queued trials on this machine (Redis from REDIS_URL, database from DATABASE_URL)',
  builder: (y: Argv) =>
    y
      .option('concurrency', { type: 'number', default: 1, describe: 'trials at once, one process each (CPU backends use one core per trial)' })
      .option('max-trials', { type: 'number', describe: 'exit after this many trials' })
      .option('exit-when-idle', { type: 'boolean', default: false, describe: 'exit when no trial is waiting, running or about to be retried' })
      .option('backend', { choices: BACKEND_CHOICES, describe: 'backend for every trial (default: each sweep\'s train.backend)' })
      .option('max-consecutive-failures', {
        type: 'number',
        describe: 'stop taking work after this many failed trial attempts in a row (default: SWEEP_MAX_CONSECUTIVE_FAILURES, else 5)',
      }) as unknown as Argv<WorkerArgs>,
  handler: async (args) => {
    if (!Number.isInteger(args.concurrency) || args.concurrency < 1) throw new UserError(`--concurrency must be a whole number >= 1, got ${args.concurrency}`);
    const maxTrials = args['max-trials'];
    if (maxTrials !== undefined && (!Number.isInteger(maxTrials) || maxTrials < 1)) throw new UserError(`--max-trials must be a whole number >= 1, got ${maxTrials}`);
    const w = await startWorker({
      concurrency: args.concurrency,
      maxTrials,
      exitWhenIdle: args['exit-when-idle'],
      backend: args.backend,
      maxConsecutiveFailures: args['max-consecutive-failures'],
    });
    const onSignal = (sig: NodeJS.Signals) => w.stop(sig);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const summary = await w.done;
      const outcomes = Object.entries(summary.outcomes).map(([k, n]) => `${n} ${k}`).join(', ') || 'no trials';
      process.stderr.write(`worker ${summary.id} stopped (${summary.reason}): ${outcomes}\n`);
      if (summary.failed) process.exitCode = 1;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};

export default command;
