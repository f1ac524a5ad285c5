/**
 * `sweep cancel SWEEP`: queued trials become `cancelled` and their jobs are removed; running
 * trials become `cancelled` and their workers stop them after the running epoch (checkpointed,
 * so `sweep launch --retry` can resume them later). Finished trials are kept.
 */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { connectRedis, redisAnswers, resolveRedisUrl } from '../infra/redis.ts';
import { openTrialQueue, removeTrialJobs } from '../worker/queue.ts';
import { cancelSweep, findSweep } from '../track/store.ts';
import { UserError } from '../util/errors.ts';

interface CancelArgs {
  sweep: string;
  json: boolean;
}

const command: CommandModule<object, CancelArgs> = {
  command: 'cancel <sweep>',
  describe: 'Cancel a sweep: drop its queued trials, stop its running ones after their epoch',
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', demandOption: true, describe: 'sweep name or id' })
      .option('json', { type: 'boolean', default: false, describe: 'print { sweep, queued, running, jobsRemoved } as JSON' }) as unknown as Argv<CancelArgs>,
  handler: async (args) => {
    const db = await openDatabase();
    let result;
    try {
      const sweep = await findSweep(db.prisma, args.sweep);
      if (!sweep) throw new UserError(`no sweep named ${JSON.stringify(args.sweep)}; \`sweep status\` lists them`);
      result = await cancelSweep(db.prisma, sweep);
    } finally {
      await db.close();
    }
    // The database is what workers obey: a job left behind is acknowledged without running.
    // Removing the jobs only keeps the queue tidy, so an unreachable Redis is not an error.
    let jobsRemoved: number | null = null;
    const url = resolveRedisUrl();
    if (result.queued.length > 0 && (await redisAnswers(url))) {
      const connection = connectRedis({ url });
      const queue = openTrialQueue(connection);
      try {
        jobsRemoved = await removeTrialJobs(queue, result.queued);
      } finally {
        await queue.close();
        await connection.quit().catch(() => {});
      }
    }
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ sweep: result.sweep, queued: result.queued.length, running: result.running, jobsRemoved })}\n`);
    } else {
      process.stdout.write(
        `cancelled ${result.sweep.name}: ${result.queued.length} queued trial(s) cancelled` +
          (jobsRemoved !== null ? ` (${jobsRemoved} job(s) removed)` : '') +
          `, ${result.running} running trial(s) stop after their current epoch\n`,
      );
    }
  },
};

export default command;
