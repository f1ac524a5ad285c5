/**
 * `sweep status [SWEEP] [--json]`: where each sweep stands: trials by state, the best so far
 * with its params, throughput and an ETA, the running trials (phase, epoch, current metric,
 * heartbeat age) and the failed and diverged ones with their reason. Reads the database only.
 */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { bestTrial, formatParams } from '../track/metrics.ts';
import { findSweep, listSweeps, TRIAL_STATUSES } from '../track/store.ts';
import { sweepStatusView, type SweepStatusView } from '../track/trial-view.ts';
import { UserError } from '../util/errors.ts';
import { formatSeconds } from '../util/progress.ts';

interface StatusArgs {
  sweep?: string;
  json: boolean;
}

/** Running trials and failures listed in the text; the rest are counted ("and N more"). */
export const LISTED = 10;
/** Characters of a failure's reason in the text (the JSON has the first line, up to 120). */
const REASON_TEXT = 72;

const num = (v: number | null, digits = 1) => (v === null ? '-' : v.toFixed(digits));
const short = (id: string) => id.slice(0, 10);

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `    ${r.map((cell, c) => cell.padEnd(widths[c])).join('  ')}`.trimEnd());
}

function runningLines(s: SweepStatusView): string[] {
  const shown = s.runningTrials.slice(0, LISTED);
  if (shown.length === 0) return [];
  const rows = [['', 'trial', 'worker', 'phase', 'epoch', s.metric.name, 'best', 'heartbeat', 'params']];
  for (const t of shown) {
    rows.push([
      `#${t.index}`,
      short(t.id),
      t.worker ?? '-',
      t.phase ?? '-',
      t.epoch === null ? '-' : `${t.epoch}${t.epochs !== null ? `/${t.epochs}` : ''}`,
      t.metric === null ? '-' : t.metric.toFixed(4),
      t.bestMetric === null ? '-' : t.bestMetric.toFixed(4),
      t.heartbeatAgeSeconds === null ? '-' : `${formatSeconds(t.heartbeatAgeSeconds)} ago${t.stale ? ' (stale)' : ''}`,
      formatParams(t.params, s.swept),
    ]);
  }
  const more = s.counts.running - shown.length;
  return [`  running:`, ...table(rows), ...(more > 0 ? [`    and ${more} more`] : [])];
}

function failureLines(s: SweepStatusView): string[] {
  const shown = s.failedTrials.slice(0, LISTED);
  if (shown.length === 0) return [];
  const rows = shown.map((t) => [`#${t.index}`, short(t.id), t.status, `${t.attempts} attempt(s)`, cut(t.reason ?? '(no reason stored)', REASON_TEXT)]);
  const more = s.counts.failed + s.counts.diverged - shown.length;
  return [`  failed and diverged (latest first; \`sweep show ID\` has the whole error):`, ...table(rows), ...(more > 0 ? [`    and ${more} more`] : [])];
}

export function statusText(s: SweepStatusView): string {
  const c = s.counts;
  const lines = [`${s.name} (${s.id}) ${s.method}, ${s.total} trial(s)${s.status !== 'active' ? `, ${s.status}` : ''}`];
  // stopped is always shown: early termination's count, zero or not.
  const always = new Set(['queued', 'running', 'finished', 'stopped']);
  lines.push(`  ${TRIAL_STATUSES.filter((k) => c[k] > 0 || always.has(k)).map((k) => `${k} ${c[k]}`).join('  ')}`);
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
  lines.push(...runningLines(s), ...failureLines(s));
  return lines.join('\n');
}

const command: CommandModule<object, StatusArgs> = {
  command: 'status [sweep]',
  describe: 'Trials by state, best so far, throughput, ETA, running trials and failures of each sweep (or of one)',
  builder: (y: Argv) =>
    y
      .positional('sweep', { type: 'string', describe: 'sweep name or id (default: every sweep)' })
      .option('json', { type: 'boolean', default: false, describe: 'print { sweeps: [{ id, name, counts, best, runningTrials, failedTrials, ... }] } as JSON' }) as unknown as Argv<StatusArgs>,
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
      // The JSON lists every running and failed trial; the text only the first LISTED of each.
      const statuses: SweepStatusView[] = [];
      for (const s of sweeps) statuses.push(await sweepStatusView(db.prisma, s.id, { limit: args.json ? undefined : LISTED }));
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
