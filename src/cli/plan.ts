/**
 * `sweep plan FILE [--json]`: expand a sweep file and print its trials. Reads the file only;
 * touches no Redis and no database, so it is safe to run anywhere before `sweep launch`.
 */
import type { CommandModule } from 'yargs';
import { expandSweep, type PlannedTrial } from '../scheduler/expand.ts';
import { leaves } from '../sweep/space.ts';
import { loadSweepFile, type SweepSpec } from '../sweep/index.ts';

interface PlanArgs {
  file: string;
  json: boolean;
}

const plan: CommandModule<object, PlanArgs> = {
  command: 'plan <file>',
  describe: 'Expand a sweep file into its trials and print them (no Redis, no database)',
  builder: (y) =>
    y
      .positional('file', { type: 'string', demandOption: true, describe: 'sweep file (YAML)' })
      .option('json', { type: 'boolean', default: false, describe: 'print {sweep, method, count, trials} as JSON' }),
  handler: async (argv) => {
    const spec = await loadSweepFile(argv.file, { trainer: true });
    const trials = expandSweep(spec);
    const out = argv.json ? planJson(spec, trials) : planTable(spec, trials);
    process.stdout.write(out);
  },
};

export default plan;

export function planJson(spec: SweepSpec, trials: PlannedTrial[]): string {
  const body = {
    sweep: spec.name,
    method: spec.method,
    count: trials.length,
    trials: trials.map(({ id, index, params }) => ({ id, index, params })),
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}

/** Columns for the swept (non-constant) parameters; everything else on one `fixed:` line. */
export function planTable(spec: SweepSpec, trials: PlannedTrial[]): string {
  const swept = leaves(spec.parameters)
    .filter((l) => l.spec.distribution !== 'constant')
    .map((l) => l.path);
  const sweptKeys = new Set(swept.map((p) => p.join('.')));
  const lines: string[] = [];
  lines.push(`sweep ${spec.name}: ${spec.method}, seed ${spec.seed}${spec.run_cap ? `, run_cap ${spec.run_cap}` : ''} (${spec.file})`);
  if (trials.length > 0) {
    const fixed = flatten(trials[0].params).filter(([k]) => !sweptKeys.has(k));
    if (fixed.length) lines.push(`fixed: ${fixed.map(([k, v]) => `${k}=${show(v)}`).join(' ')}`);
    const header = ['index', 'id', ...swept.map((p) => p.join('.'))];
    const rows = trials.map((t) => [String(t.index), t.id, ...swept.map((p) => show(get(t.params, p)))]);
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    const fmt = (r: string[]) => r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
    lines.push(fmt(header), ...rows.map(fmt));
  }
  lines.push(`${trials.length} trial${trials.length === 1 ? '' : 's'}`);
  return `${lines.join('\n')}\n`;
}

function get(obj: unknown, path: string[]): unknown {
  return path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

function flatten(obj: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  return Object.entries(obj).flatMap(([k, v]): Array<[string, unknown]> =>
    v && typeof v === 'object' && !Array.isArray(v) ? flatten(v as Record<string, unknown>, `${prefix}${k}.`) : [[`${prefix}${k}`, v]],
  );
}

function show(v: unknown): string {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(+v.toPrecision(6));
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
