/**
 * `sweep launch FILE [--workers N] [--retry] [--json]`: store the sweep's trials and enqueue
 * the queued ones; with --workers N, also train them here with N local workers and show the
 * sweep's progress until every trial has ended.
 *
 * Exit codes: 0 launched (and, with workers, every trial finished); 1 some trial ended
 * otherwise (failed, diverged, cancelled) or was left unfinished; 2 bad sweep file (nothing
 * written); 130 interrupted (running trials go back to the queue).
 */
import type { Argv, CommandModule } from 'yargs';
import { launchSweep, superviseLocalWorkers, tail, type LaunchResult, type SweepSnapshot } from '../scheduler/launch.ts';
import { redactUrl } from '../infra/env.ts';
import { BACKEND_CHOICES } from '../train/backend.ts';
import { accuracyPairs, accuracyText, bestTrial, formatParams } from '../track/metrics.ts';
import { endedCount, type SweepStatus } from '../track/store.ts';
import { UserError } from '../util/errors.ts';
import { bar, formatSeconds } from '../util/progress.ts';

interface LaunchArgs {
  file: string;
  workers: number;
  retry: boolean;
  json: boolean;
  backend?: string;
}

function launchLines(r: LaunchResult): string[] {
  const lines = [
    `sweep ${r.sweep.name} (${r.sweep.id}): ${r.trials} trial(s): ${r.new} new, ${r.existing} already existed` +
      (r.requeued ? `, ${r.requeued} set back to queued` : '') +
      `; ${r.enqueued} job(s) enqueued, ${r.queued} trial(s) queued`,
    `queue at ${redactUrl(r.redis.url)}${r.redis.started ? ' (private redis-server started)' : ''}; ${r.database.kind} database at ${r.database.url}`,
  ];
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines;
}

function countsLine(s: SweepStatus): string {
  const c = s.counts;
  const ended = endedCount(c);
  const parts = [`${c.finished} finished`];
  for (const k of ['failed', 'diverged', 'stopped', 'cancelled'] as const) if (c[k]) parts.push(`${c[k]} ${k}`);
  return `${ended}/${s.total} ended (${parts.join(', ')}), ${c.running} running, ${c.queued} queued`;
}

function bestLine(s: SweepStatus): string {
  return s.best ? `${bestTrial(s)}  ${formatParams(s.best.params, s.swept)}` : `best: none yet (${s.metric.name}, ${s.metric.goal})`;
}

function progressCell(s: SweepSnapshot, id: string): string {
  const p = s.progress.get(id);
  if (!p || !p.phase) return '';
  const epochs = p.epochs ? `/${p.epochs}` : '';
  const batch = p.batches ? ` ${bar((p.batch ?? 0) / p.batches, 12)} ${p.batch}/${p.batches}` : '';
  return `${p.phase} ${(p.epoch ?? 0) + (p.batches ? 1 : 0)}${epochs}${batch}`;
}

const NO_VALUES = { valCharAcc: null, valSeqAcc: null };

/** What to try once a sweep has run: commands, each with what it shows. */
export function nextSteps(s: SweepStatus): string[] {
  const name = /^[\w.@:+-]+$/.test(s.name) ? s.name : `'${s.name.replace(/'/g, "'\\''")}'`;
  const steps: Array<[string, string]> = [
    ...(s.best ? [[`npx sweep show ${name}#${s.best.index}`, 'the best trial: every epoch, its result, its files'] as [string, string]] : []),
    [`npx sweep status ${name}`, 'where the sweep stands (from any shell, at any time)'],
    [`npx sweep ensemble build ${name}`, 'a voting ensemble of its best trials'],
  ];
  const width = Math.max(...steps.map(([c]) => c.length));
  return ['next:', ...steps.map(([c, what]) => `  ${c.padEnd(width)}  # ${what}`)];
}

/** The live table on a terminal: counts, best, then running trials and the latest ended ones. */
function table(s: SweepSnapshot, columns: number): string[] {
  const st = s.status;
  const ended = st.total - st.counts.queued - st.counts.running;
  const lines = [
    `${st.name} ${bar(st.total ? ended / st.total : 0)} ${countsLine(st)}  ${formatSeconds(s.elapsedMs / 1000)}` +
      (st.etaSeconds && st.etaSeconds > 0 ? `  ETA ${formatSeconds(st.etaSeconds)}` : ''),
    bestLine(st),
  ];
  const running = s.trials.filter((t) => t.status === 'running');
  const endedRows = s.trials
    .filter((t) => t.status !== 'running' && t.status !== 'queued')
    .sort((a, b) => (b.finishedAt?.getTime() ?? 0) - (a.finishedAt?.getTime() ?? 0))
    .slice(0, Math.max(0, 12 - running.length));
  const rows = [...running, ...endedRows].map((t) => [
    `#${t.index}`,
    t.id.slice(0, 10),
    t.status,
    formatParams(t.params, st.swept),
    t.status === 'running' ? progressCell(s, t.id) : t.status === 'failed' || t.status === 'diverged' ? (t.error ?? '').split('\n')[0].slice(0, 40) : '',
    t.bestMetric === null ? '' : t.bestMetric.toFixed(4),
    ...accuracyPairs(st.metric, t).map(([, v]) => (v === null ? '' : v.toFixed(4))),
  ]);
  if (rows.length > 0) {
    const header = ['', 'trial', 'status', 'params', 'progress', st.metric.name, ...accuracyPairs(st.metric, NO_VALUES).map(([name]) => name)];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    for (const r of [header, ...rows]) lines.push(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  }
  return lines.map((l) => l.slice(0, Math.max(20, columns - 1)));
}

const command: CommandModule<object, LaunchArgs> = {
  command: 'launch <file>',
  describe: 'Store a sweep\'s trials and enqueue them; with --workers N, also train them here',
  builder: (y: Argv) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'sweep file (YAML)' })
      .option('workers', { type: 'number', default: 0, describe: 'start N local workers and follow the sweep until every trial has ended' })
      .option('backend', { choices: BACKEND_CHOICES as string[], describe: 'backend for the local workers (default: the sweep\'s train.backend)' })
      .option('retry', { type: 'boolean', default: false, describe: 'set failed and cancelled trials back to queued' })
      .option('json', { type: 'boolean', default: false, describe: 'print the launch (and, with workers, the outcome) as JSON on stdout' }) as unknown as Argv<LaunchArgs>,
  handler: async (args) => {
    if (!Number.isInteger(args.workers) || args.workers < 0) throw new UserError(`--workers must be a whole number >= 0, got ${args.workers}`);
    const err = (line: string) => process.stderr.write(`${line}\n`);
    const r = await launchSweep({ file: args.file, retry: args.retry, log: err });
    if (args.workers === 0) {
      if (args.json) process.stdout.write(`${JSON.stringify(launchJson(r), null, 2)}\n`);
      else process.stdout.write(`${launchLines(r).join('\n')}\n`);
      return;
    }
    for (const l of launchLines(r)) err(l);

    const tty = Boolean(process.stderr.isTTY) && !process.env.CI;
    let drawn = 0;
    const seen = new Map<string, string>();
    const onSnapshot = (s: SweepSnapshot) => {
      if (tty) {
        const lines = table(s, process.stderr.columns || 100);
        process.stderr.write(`${drawn ? `\x1b[${drawn}F\x1b[J` : ''}${lines.join('\n')}\n`);
        drawn = lines.length;
        return;
      }
      // Piped: one line per trial that changed state.
      for (const t of s.trials) {
        const key = `${t.status}:${t.attempts}`;
        if (seen.get(t.id) === key) continue;
        const first = !seen.has(t.id);
        seen.set(t.id, key);
        if (first && t.status === 'queued') continue;
        const acc = accuracyText(s.status.metric, t);
        const metric = (t.bestMetric === null ? '' : ` ${s.status.metric.name} ${t.bestMetric.toFixed(4)}`) + (acc ? ` ${acc}` : '');
        const why = t.error && (t.status === 'failed' || t.status === 'diverged') ? `: ${t.error.split('\n')[0]}` : '';
        err(`${formatSeconds(s.elapsedMs / 1000).padStart(6)} #${t.index} ${t.id.slice(0, 10)} ${t.status}${metric}${why}  ${formatParams(t.params, s.status.swept)}  [${countsLine(s.status)}]`);
      }
    };
    let interruptedBy: NodeJS.Signals | null = null;
    const sup = await superviseLocalWorkers({ sweepId: r.sweep.id, workers: args.workers, redisUrl: r.redis.url, backend: args.backend, intervalMs: tty ? 1000 : 2000, onSnapshot, log: err });
    const onSignal = (sig: NodeJS.Signals) => {
      if (!interruptedBy) err(`\n${sig}: workers stop after their running epoch and give the trial back (again to stop now)`);
      interruptedBy = sig;
      sup.stop(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let result;
    try {
      result = await sup.done;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const s = result.final.status;
    for (const w of sup.workers) {
      if (w.exit && w.exit.code !== 0 && !interruptedBy && !(w.stoppedWhenDone && w.exit.signal === 'SIGTERM')) err(`worker ${w.index} (pid ${w.pid}) exited with ${w.exit.signal ?? `code ${w.exit.code}`}; its log ${w.log} ends:\n${tail(w.log)}`);
    }
    const allFinished = s.counts.finished === s.total;
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ ...launchJson(r), outcome: { seconds: result.final.elapsedMs / 1000, interrupted: result.interrupted, status: s, workers: sup.workers } }, null, 2)}\n`);
    } else {
      const out = [`${s.name}: ${countsLine(s)} in ${formatSeconds(result.final.elapsedMs / 1000)}`, bestLine(s)];
      if (s.best) out.push(`  params: ${formatParams(s.best.params)} seed=${s.best.seed}`);
      out.push(...nextSteps(s));
      if (result.interrupted) out.push('interrupted: run `sweep worker` (or launch again with --workers) to finish the sweep; trials resume from their checkpoints');
      process.stdout.write(`${out.join('\n')}\n`);
    }
    process.exitCode = interruptedBy ? 130 : allFinished ? 0 : 1;
  },
};

function launchJson(r: LaunchResult) {
  const { spec: _spec, ...rest } = r;
  return { ...rest, redis: { ...r.redis, url: redactUrl(r.redis.url) } };
}

export default command;
