/**
 * `sweep status [SWEEP] [--json]`: where each sweep stands: trials by state, the best so far
 * with its params, throughput and an ETA. Reads the database only.
 */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { bestTrial, formatParams } from '../track/metrics.ts';
import { findSweep, listSweeps, sweepStatus, TRIAL_STATUSES, type SweepStatus } from '../track/store.ts';
import { UserError } from '../util/errors.ts';
import { formatSeconds } from '../util/progress.ts';

interface StatusArgs {
  sweep?: string;
  json: boolean;
}

const num = (v: number | null, digits = 1) => (v === null ? '-' : v.toFixed(digits));

export function statusText(s: SweepStatus): string {
  const c = s.counts;
  const lines = [`${s.name} (${s.id}) ${s.method}, ${s.total} trial(s)${s.status !== 'active' ? `, ${s.status}` : ''}`];
  lines.push(`  ${TRIAL_STATUSES.filter((k) => c[k] > 0 || k === 'queued' || k === 'running' || k === 'finished').map((k) => `${k} ${c[k]}`).join('  ')}`);
  if (s.best) {
    lines.push(`  ${bestTrial(s)}`);
    lines.push(`        ${formatParams(s.best.params, s.swept)}`);
  } else {
    lines.push(`  best: none yet (${s.metric.name}, ${s.metric.goal})`);
  }
  const t = s.throughput;
  lines.push(
    `  throughput: ${num(t.trialsPerHour)} trials/h, ${num(t.imagesPerSecond)} img/s now (${num(t.imagesPerSecondPerTrial)} img/s per finished trial)` +
      `, ETA ${s.etaSeconds === null ? '-' : s.etaSeconds === 0 ? 'done' : formatSeconds(s.etaSeconds)}`,
  );
  return lines.join('\n');
}

const command: CommandModule<object, StatusArgs> = {
  command: 'status [sweep]',
  describe: 'Trials by state, best so far, throughput and ETA of each sweep (or of one)',
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', describe: 'sweep name or id (default: every sweep)' })
      .option('json', { type: 'boolean', default: false, describe: 'print { sweeps: [{ id, name, counts, best, ... }] } as JSON' }) as unknown as Argv<StatusArgs>,
  handler: async (args) => {
    const db = await openDatabase();
    try {
      let sweeps: Array<{ id: string; name: string }>;
      if (args.sweep) {
        const one = await findSweep(db.prisma, args.sweep);
        if (!one) throw new UserError(`no sweep named ${JSON.stringify(args.sweep)}; \`sweep status\` lists them`);
        sweeps = [one];
      } else {
        sweeps = await listSweeps(db.prisma);
      }
      const statuses: SweepStatus[] = [];
      for (const s of sweeps) statuses.push(await sweepStatus(db.prisma, s.id));
      if (args.json) {
        process.stdout.write(`${JSON.stringify({ sweeps: statuses }, null, 2)}\n`);
      } else if (statuses.length === 0) {
        process.stdout.write('no sweeps yet; start one with `sweep launch FILE`\n');
      } else {
        process.stdout.write(`${statuses.map(statusText).join('\n\n')}\n`);
      }
    } finally {
      await db.close();
    }
  },
};

export default command;
