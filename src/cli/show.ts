/**
 * `sweep show TRIAL [--json]`: one trial in full: where it stands, its params, every epoch
 * of each phase with a sparkline of the sweep metric, its result, and its files on disk.
 * TRIAL is an id, a unique id prefix (6+ characters) or SWEEP#INDEX. Reads only.
 */
import type { Argv, CommandModule } from 'yargs';
import { openDatabase } from '../infra/db.ts';
import { wandbRunLink } from '../track/wandb/index.ts';
import { trialView, type PhaseView, type TrialView } from '../track/trial-view.ts';
import { UserError } from '../util/errors.ts';
import { formatSeconds } from '../util/progress.ts';

interface ShowArgs {
  trial?: string;
  json: boolean;
}

const SPARKS = '▁▂▃▄▅▆▇█';
/** Lines of a long error (a stack) printed before the rest is left to --json. */
const ERROR_LINES = 12;

/** One block character per value, scaled from the lowest (▁) to the highest (█); a gap for null. */
export function sparkline(values: ReadonlyArray<number | null>): string {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (finite.length === 0) return '';
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  return values
    .map((v) => {
      if (v === null || !Number.isFinite(v)) return ' ';
      if (hi === lo) return SPARKS[0];
      return SPARKS[Math.min(SPARKS.length - 1, Math.floor(((v - lo) / (hi - lo)) * SPARKS.length))];
    })
    .join('');
}

/** A metric value as the tables print it. */
export function formatValue(key: string, v: number): string {
  if (key === 'seconds') return formatSeconds(v);
  if (key === 'images_per_s') return v.toFixed(1);
  if (/acc|loss/.test(key)) return v.toFixed(4);
  return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
}

function formatBytes(n: number | null): string {
  if (n === null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function formatTime(iso: string | null): string {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}Z` : '-';
}

function showParam(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Rows of cells as columns two spaces apart, each line indented. */
function columns(rows: string[][], indent = '  '): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `${indent}${r.map((cell, c) => cell.padEnd(widths[c])).join('  ')}`.trimEnd());
}

/** The epoch table's columns, in this order, where any epoch has them. */
const EPOCH_COLUMNS: ReadonlyArray<[key: string, header: string]> = [
  ['loss', 'loss'],
  ['val_loss', 'val_loss'],
  ['char_acc', 'char_acc'],
  ['val_char_acc', 'val_char_acc'],
  ['seq_acc', 'seq_acc'],
  ['val_seq_acc', 'val_seq_acc'],
  ['images_per_s', 'images/s'],
  ['seconds', 'seconds'],
];

function phaseLines(ph: PhaseView, metric: string): string[] {
  const cols = EPOCH_COLUMNS.filter(([k]) => ph.epochs.some((e) => k in e.values));
  // A sweep metric outside the usual columns (e.g. test_seq_acc per epoch) gets one too.
  if (!EPOCH_COLUMNS.some(([k]) => k === metric) && ph.epochs.some((e) => metric in e.values)) cols.splice(cols.length - 2, 0, [metric, metric]);
  const last = ph.epochs[ph.epochs.length - 1]?.epoch ?? 0;
  const lines = [`${ph.phase}: ${ph.epochs.length} epoch(s)${ph.planned !== null ? `, up to ${ph.planned}` : ''}${ph.epochs.length !== last ? `, last #${last}` : ''}`];
  const rows = [['epoch', ...cols.map(([, h]) => h)]];
  for (const e of ph.epochs) rows.push([String(e.epoch), ...cols.map(([k]) => (k in e.values ? formatValue(k, e.values[k]) : '-'))]);
  lines.push(...columns(rows));
  const values = ph.metric.filter((v): v is number => v !== null);
  if (values.length > 0) {
    lines.push(
      `  ${metric} ${sparkline(ph.metric)}  ${formatValue(metric, values[0])} -> ${formatValue(metric, values[values.length - 1])}` +
        ` (min ${formatValue(metric, Math.min(...values))}, max ${formatValue(metric, Math.max(...values))})`,
    );
  }
  return lines;
}

const SUMMARY_GROUPS: ReadonlyArray<[label: string, prefix: string]> = [
  ['test', 'test_'],
  ['val', 'val_'],
];

/** Phases in training order (the database returns JSON keys in its own order). */
function byPhase<T>(entries: Array<[string, T]>): Array<[string, T]> {
  const rank = (p: string) => (p === 'pretrain' ? 0 : p === 'gru' ? 1 : 2);
  return entries.sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
}

function summaryLines(s: Record<string, unknown>): string[] {
  const num = (k: string) => (typeof s[k] === 'number' && Number.isFinite(s[k]) ? (s[k] as number) : null);
  const lines = ['summary:'];
  for (const [label, prefix] of SUMMARY_GROUPS) {
    const parts = ['seq_acc', 'char_acc', 'loss']
      .map((m) => [m, num(prefix + m)] as const)
      .filter(([, v]) => v !== null)
      .map(([m, v]) => `${m} ${formatValue(m, v!)}`);
    if (parts.length) lines.push(`  ${label.padEnd(5)} ${parts.join('  ')}`);
  }
  const other: string[] = [];
  if (num('images_per_s') !== null) other.push(`${formatValue('images_per_s', num('images_per_s')!)} img/s`);
  if (num('seconds') !== null) other.push(`${formatSeconds(num('seconds')!)} training`);
  if (num('parameter_count') !== null) other.push(`${num('parameter_count')!.toLocaleString('en-US')} parameters`);
  const run = s.epochs_run;
  if (run && typeof run === 'object') other.push(`epochs run: ${byPhase(Object.entries(run)).map(([p, n]) => `${p} ${n}`).join(', ')}`);
  if (other.length) lines.push(`  ${other.join(', ')}`);
  const best = s.best;
  if (best && typeof best === 'object') {
    const kept = byPhase(Object.entries(best as Record<string, { epoch?: number; val_seq_acc?: number } | undefined>))
      .filter(([, b]) => b && typeof b.epoch === 'number')
      .map(([p, b]) => `${p} epoch ${b!.epoch! + 1}${typeof b!.val_seq_acc === 'number' ? ` (val_seq_acc ${b!.val_seq_acc.toFixed(4)})` : ''}`);
    if (kept.length) lines.push(`  kept weights: ${kept.join(', ')}`);
  }
  return lines.length > 1 ? lines : [];
}

/** `sweep show`'s text. Pure: everything comes from the view. */
export function showText(v: TrialView): string {
  const lines: string[] = [];
  lines.push(`trial ${v.id}  ${v.sweep.name}#${v.index}  (sweep ${v.sweep.name}, ${v.sweep.method})`);
  const errorLines = v.error ? v.error.trimEnd().split('\n') : [];
  lines.push(`status: ${v.status}${errorLines.length ? `: ${errorLines[0]}` : ''}`);
  if (errorLines.length > 1) {
    const rest = errorLines.slice(1, ERROR_LINES);
    lines.push(...rest.map((l) => `  ${l}`));
    if (errorLines.length > ERROR_LINES) lines.push(`  ... ${errorLines.length - ERROR_LINES} more line(s) (--json has the whole error)`);
  }
  lines.push(`attempts: ${v.attempts}  worker: ${v.worker ?? '-'}  backend: ${v.backend ?? '-'}  seed: ${v.seed}`);
  const heartbeat = v.heartbeatAt ? `${formatTime(v.heartbeatAt)}${v.heartbeatAgeSeconds !== null ? ` (${formatSeconds(v.heartbeatAgeSeconds)} ago)` : ''}` : '-';
  lines.push(`started: ${formatTime(v.startedAt)}  finished: ${formatTime(v.finishedAt)}  heartbeat: ${heartbeat}`);
  lines.push(
    `duration: ${v.durationSeconds === null ? '-' : formatSeconds(v.durationSeconds)}${v.status === 'running' && v.durationSeconds !== null ? ' so far' : ''}` +
      (v.epochSeconds !== null ? ` (epochs: ${formatSeconds(v.epochSeconds)})` : ''),
  );

  lines.push('', 'params (* swept):');
  const params = [...v.params.filter((p) => p.swept), ...v.params.filter((p) => !p.swept).sort((a, b) => a.name.localeCompare(b.name))];
  if (params.length) lines.push(...columns(params.map((p) => [p.swept ? '*' : ' ', p.name, showParam(p.value)])));
  else lines.push('  (none)');

  const m = v.metric;
  lines.push(
    '',
    `${m.name} (${m.goal}): best ${m.best === null ? '-' : formatValue(m.name, m.best)}` +
      (m.bestAt ? ` at ${m.bestAt.phase} epoch ${m.bestAt.epoch}` : ''),
  );

  if (v.phases.length === 0) lines.push('', 'epochs: none stored yet');
  for (const ph of v.phases) lines.push('', ...phaseLines(ph, m.name));

  if (v.summary) {
    const s = summaryLines(v.summary);
    if (s.length) lines.push('', ...s);
  }

  lines.push('', 'artifacts:');
  if (v.artifacts.length === 0) lines.push('  none stored');
  else {
    lines.push(
      ...columns(
        v.artifacts.map((a) => [a.kind, a.phase ?? '', a.path, `${formatBytes(a.bytes)}${a.exists ? '' : ' (not on this machine)'}`.trim()]),
      ),
    );
  }
  const c = v.checkpoints;
  const found = c.found.map((k) => `${k.phase} ${k.epoch}${k.latest || k.best ? ` (${[k.latest ? 'latest' : '', k.best ? 'best' : ''].filter(Boolean).join(', ')})` : ''}`);
  lines.push(`checkpoints: ${c.dir}: ${!c.exists ? 'not on this machine' : found.length ? found.join(', ') : 'none'}`);
  lines.push(`wandb: ${v.wandb ?? '-'}${v.wandbError ? ` (lookup failed: ${v.wandbError})` : ''}`);
  return lines.join('\n');
}

const command: CommandModule<object, ShowArgs> = {
  command: 'show <trial>',
  describe: 'One trial in full: status, params, epochs per phase, result, artifacts and checkpoints',
  builder: (y: Argv) =>
    y
      .positional('trial', { type: 'string', describe: 'trial id, unique id prefix (6+ characters), or SWEEP#INDEX' })
      .option('json', { type: 'boolean', default: false, describe: 'print the trial as one JSON object' }) as unknown as Argv<ShowArgs>,
  handler: async (args) => {
    if (args.trial === undefined) throw new UserError('name a trial: its id, a unique id prefix (6+ characters) or SWEEP#INDEX');
    const db = await openDatabase();
    try {
      const view = await trialView(db.prisma, String(args.trial), { wandbLink: (trialId) => wandbRunLink(db.prisma, trialId) });
      process.stdout.write(args.json ? `${JSON.stringify(view, null, 2)}\n` : `${showText(view)}\n`);
    } finally {
      await db.close();
    }
  },
};

export default command;
