/**
 * `sweep wandb sync [SWEEP] [--json]`: send the W&B outbox now (offline mode's rows, rows given
 * up on after an outage); exit 1 when some stayed unsent, with why.
 * `sweep wandb status [SWEEP] [--json]`: outbox rows by state and the last error, per sweep.
 */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { findSweep } from '../track/store.ts';
import { outboxStatus, redactError, syncOutbox, wandbSettings, type SyncProgress } from '../track/wandb/index.ts';
import { EXIT_FAILURE, UserError } from '../util/errors.ts';
import { progressLine } from '../util/progress.ts';

interface WandbArgs {
  sweep?: string;
  json: boolean;
}

async function sweepScope(prisma: Parameters<typeof findSweep>[0], name: string | undefined): Promise<{ id: string; name: string } | undefined> {
  if (!name) return undefined;
  const sweep = await findSweep(prisma, name);
  if (!sweep) throw new UserError(`no sweep named ${JSON.stringify(name)}; \`sweep status\` lists them`);
  return sweep;
}

const options = (y: Argv, json: string) =>
  y
    .positional('sweep', { type: 'string', describe: 'sweep name or id (default: every sweep)' })
    .option('json', { type: 'boolean', default: false, describe: json }) as unknown as Argv<WandbArgs>;

const sync: CommandModule<object, WandbArgs> = {
  command: 'sync [sweep]',
  describe: 'Send the W&B outbox now: pending rows and rows given up on',
  builder: (y: Argv) => options(y, 'print { delivered, failed, pending, errors } as JSON'),
  handler: async (args) => {
    const env = process.env;
    const settings = wandbSettings(env);
    if (!settings.apiKey) throw new UserError('WANDB_API_KEY is not set: `sweep wandb sync` needs it to send the outbox to W&B');
    const db = await openDatabase({ env });
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const out = progressLine(process.stderr);
    try {
      const sweep = await sweepScope(db.prisma, args.sweep);
      const where = sweep ? `sweep ${sweep.name}` : 'every sweep';
      out.line(`W&B: sending the outbox of ${where} to ${settings.baseUrl} (project ${settings.project})`);
      let lastLine = 0;
      const show = (p: SyncProgress) => {
        const text = `W&B: ${p.delivered} row(s) sent, ${p.pending} to go, ${p.undeliverable} undeliverable`;
        out.update(text);
        // Plain lines when piped: one every few seconds is enough to show it is moving.
        if (Date.now() - lastLine > 5_000) {
          lastLine = Date.now();
          if (!process.stderr.isTTY || process.env.CI) out.line(text);
        }
      };
      const result = await syncOutbox(db.prisma, env, {
        sweepId: sweep?.id,
        onProgress: show,
        log: (l) => out.line(l),
        signal: abort.signal,
      });
      out.done();
      if (args.json) {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        out.line(`W&B: ${result.delivered} row(s) sent; ${result.pending} pending, ${result.failed} undeliverable`);
      }
      for (const e of result.errors) process.stderr.write(`sweep: W&B: ${e}\n`);
      if (abort.signal.aborted) {
        process.exitCode = 130;
      } else if (result.failed > 0 || result.pending > 0) {
        process.exitCode = EXIT_FAILURE;
      }
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new Error(redactError(err, settings.apiKey));
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await db.close();
    }
  },
};

const status: CommandModule<object, WandbArgs> = {
  command: 'status [sweep]',
  describe: 'W&B outbox rows by state (sent, pending, undeliverable) and the last error',
  builder: (y: Argv) => options(y, 'print { sweeps: [{ sweep, delivered, pending, undeliverable, lastError, ... }] } as JSON'),
  handler: async (args) => {
    const db = await openDatabase();
    try {
      const sweep = await sweepScope(db.prisma, args.sweep);
      const sweeps = await outboxStatus(db.prisma, sweep?.id);
      if (args.json) {
        process.stdout.write(`${JSON.stringify({ sweeps }, null, 2)}\n`);
        return;
      }
      if (sweeps.length === 0) {
        process.stdout.write(`no W&B outbox rows${sweep ? ` for ${sweep.name}` : ''} (WANDB_MODE disabled, or no trial has started)\n`);
        return;
      }
      const lines: string[] = [];
      for (const s of sweeps) {
        lines.push(`${s.sweep}: ${s.delivered} sent, ${s.pending} pending, ${s.undeliverable} undeliverable; ${s.runs} run(s) on W&B`);
        if (s.sweepUrl) lines.push(`  sweep: ${s.sweepUrl}`);
        if (s.lastDeliveredAt) lines.push(`  last sent: ${s.lastDeliveredAt}`);
        if (s.lastError) lines.push(`  last error: ${s.lastError}`);
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await db.close();
    }
  },
};

const command: CommandModule<object, object> = {
  command: 'wandb <command>',
  describe: 'Weights & Biases mirror: send the outbox, see what is left',
  builder: (y: Argv) => y.command(sync).command(status).demandCommand(1, 'Name a wandb command: sync or status.') as Argv,
  handler: () => {},
};

export default command;
