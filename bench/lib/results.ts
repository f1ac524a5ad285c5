/**
 * Where a benchmark script writes what it measured: `bench/results/<name>.md` (a short page a
 * reader can open from the README) and `bench/results/<name>.json` (the same numbers for a
 * script), each with the machine, its load, the command and the date. A run replaces the
 * previous files of the same name; git keeps the history.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/results/, or BENCH_RESULTS_DIR (a smoke run of a script that should not replace the committed page). */
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export interface Machine {
  cpu: string;
  cores: number;
  mhz: number;
  memoryGiB: number;
  node: string;
  platform: string;
}

export function machine(): Machine {
  const c = os.cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown cpu',
    cores: c.length,
    mhz: c[0]?.speed ?? 0,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

export function machineLine(m: Machine = machine()): string {
  return `${m.cpu}, ${m.cores} cores${m.mhz ? ` (${m.mhz} MHz reported)` : ''}, ${m.memoryGiB} GiB, Node ${m.node.replace(/^v/, '')}`;
}

/** The 1, 5 and 15 minute load averages, as `os.loadavg()` gives them. */
export function load(): [number, number, number] {
  const [a, b, c] = os.loadavg();
  return [round2(a), round2(b), round2(c)];
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The command as typed: the script's path relative to the working directory and its arguments. */
export function commandLine(argv: readonly string[] = process.argv): string {
  const script = argv[1] ? relative(process.cwd(), argv[1]) || argv[1] : '';
  return ['npx tsx', script, ...argv.slice(2).map((x) => (/^[\w./=:,@-]+$/.test(x) ? x : JSON.stringify(x)))].join(' ').trim();
}

/** A Markdown table from a header row and rows of cells. */
export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly (string | number)[]>): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export interface BenchResults {
  /** File name stem: `bench/results/<name>.md` and `.json`; by convention the script's name. */
  name: string;
  title: string;
  /** The Markdown body: tables and a few sentences on what was measured and how to read it. */
  markdown: string;
  /** The numbers, as data. */
  data: unknown;
  /** Load average at the start of the run, when the script sampled it (else: now). */
  loadAtStart?: [number, number, number];
  /** When the run started; the page then says how long it has run. */
  startedAt?: Date;
  /** Said at the top of the page when the numbers are not a finished run's, e.g. "partial: epoch 3 of 16". */
  status?: string;
  /** Where to write; bench/results/ unless a caller (a test) says otherwise. */
  dir?: string;
}

/** What a script samples as it starts, to hand to writeResults at the end: `{ ...started, ... }`. */
export function runStart(): { loadAtStart: [number, number, number]; startedAt: Date } {
  return { loadAtStart: load(), startedAt: new Date() };
}

/** Writes both files (each atomically) and returns their paths. */
export function writeResults(r: BenchResults): { md: string; json: string } {
  const dir = r.dir ?? RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const m = machine();
  const now = new Date();
  const date = (r.startedAt ?? now).toISOString();
  const seconds = r.startedAt ? Math.round((now.getTime() - r.startedAt.getTime()) / 1000) : null;
  const command = commandLine();
  const loadNow = load();
  const header = [
    `# ${r.title}`,
    '',
    `- machine: ${machineLine(m)}`,
    `- load average (1/5/15 min): ${(r.loadAtStart ?? loadNow).join(' / ')} at the start${r.loadAtStart ? `, ${loadNow.join(' / ')} at the end` : ''}${busyNote(r.loadAtStart ?? loadNow, loadNow, m.cores)}`,
    `- command: \`${command}\``,
    `- date: ${date}${seconds === null ? '' : `, ran ${formatDuration(seconds)}`}`,
    ...(r.status ? [`- status: ${r.status}`] : []),
    '',
  ].join('\n');
  const md = join(dir, `${r.name}.md`);
  const json = join(dir, `${r.name}.json`);
  const write = (file: string, text: string) => {
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };
  write(md, `${header}\n${r.markdown.trim()}\n`);
  write(json, `${JSON.stringify({ name: r.name, title: r.title, machine: m, load: { start: r.loadAtStart ?? loadNow, end: loadNow }, command, date, seconds, status: r.status ?? 'complete', data: r.data }, null, 1)}\n`);
  return { md, json };
}

/** A shared machine's load skews wall times: say so on the page when it was above the core count. */
export function busyNote(start: readonly number[], end: readonly number[], cores: number): string {
  const worst = Math.max(start[0], end[0]);
  return worst > cores ? ` (busy: other work ran on the ${cores} cores; wall times are slower than on an idle machine)` : '';
}

function formatDuration(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
