/**
 * `sweep dashboard [SWEEP] [--port P] [--host H] [--json]`: the report's views of a sweep served
 * live from the database (updated as epochs arrive), with the queue and the workers'
 * heartbeats. Read-only. Binds to 127.0.0.1 unless --host says otherwise. Runs until
 * interrupted (Ctrl-C or SIGTERM), then closes the server, the database and Redis.
 */
import type { Argv, CommandModule } from 'yargs';
import { UserError } from '../util/errors.ts';

interface DashboardArgs {
  sweep?: string;
  port: number;
  host: string;
  json: boolean;
}

export const DEFAULT_PORT = 8377;

const command: CommandModule<object, DashboardArgs> = {
  command: 'dashboard [sweep]',
  describe: "Serve a sweep's report live on a local web page (updated as epochs arrive), with the queue and the workers",
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', describe: 'sweep name or id (default: the latest sweep)' })
      .option('port', { type: 'number', default: DEFAULT_PORT, describe: 'TCP port (0: any free one)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on (another than 127.0.0.1 lets other machines read the page)' })
      .option('json', { type: 'boolean', default: false, describe: 'print { url, port, sweep } as JSON once listening' }) as unknown as Argv<DashboardArgs>,
  handler: async (args) => {
    if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) throw new UserError(`--port must be an integer from 0 to 65535, got ${String(args.port)}`);
    const { openDatabase } = await import('../infra/db.ts');
    const { redactUrl } = await import('../infra/env.ts');
    const { connectRedis, redisAnswers, resolveRedisUrl } = await import('../infra/redis.ts');
    const { openTrialQueue } = await import('../worker/queue.ts');
    const { listSweeps } = await import('../track/store.ts');
    const { startDashboard } = await import('../report/server.ts');
    const db = await openDatabase();
    const closers: Array<() => Promise<unknown>> = [() => db.close()];
    const closeAll = async () => {
      for (const c of closers.reverse()) await c().catch(() => {});
    };
    try {
      const sweep = args.sweep ?? (await listSweeps(db.prisma))[0]?.name; // newest first
      if (!sweep) throw new UserError('no sweeps yet; start one with `sweep launch FILE`');
      const url = resolveRedisUrl();
      let queue = null;
      if (await redisAnswers(url)) {
        const connection = connectRedis({ url });
        queue = openTrialQueue(connection);
        const q = queue;
        closers.push(() => connection.quit(), () => q.close());
      }
      const dash = await startDashboard({ prisma: db.prisma, sweep, host: args.host, port: args.port, env: process.env, queue, redisLabel: `Redis at ${redactUrl(url)}` });
      closers.push(() => dash.close());
      const name = dash.live.state.data.sweep.name;
      process.stdout.write(args.json ? `${JSON.stringify({ url: dash.url, port: dash.port, sweep: name })}\n` : `dashboard of ${name} at ${dash.url} (read-only; Ctrl-C stops it)\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    } finally {
      await closeAll();
    }
  },
};

export default command;
