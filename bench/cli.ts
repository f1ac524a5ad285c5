/**
 * How long the CLI takes to answer: CPU (user + sys of the whole process, and of the children it
 * waits for) and wall time of `sweep --help`, `sweep plan sweeps/grid.yaml` and `sweep status`,
 * each run as a new process, median of several runs. `status` runs against the embedded database
 * with its server already running (started once per tree by `sweep db migrate`, in a fresh
 * SWEEP_HOME, so it lists no sweeps: what is measured is loading and one query, not a big table).
 *
 *   npx tsx bench/cli.ts [--runs 7] [--tree before=/tmp/sweep-main] [--tree after=.]
 *
 * Each --tree is a checkout to measure, as LABEL=DIR (default: this checkout, as `after`). To
 * measure main as it was, e.g.:
 *   git worktree add /tmp/sweep-main main && ln -s "$PWD/node_modules" /tmp/sweep-main/node_modules
 *   cp -r src/infra/generated /tmp/sweep-main/src/infra/    # the generated Prisma client
 * A checkout whose dist/ is up to date runs compiled; else through tsx (the table says which).
 * Needs GNU time (/usr/bin/time). Unset DATABASE_URL so that status uses the embedded database.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { markdownTable, runStart, writeResults } from './lib/results.ts';

const COMMANDS: ReadonlyArray<{ name: string; args: string[] }> = [
  { name: 'sweep --help', args: ['--help'] },
  { name: 'sweep plan sweeps/grid.yaml', args: ['plan', 'sweeps/grid.yaml'] },
  { name: 'sweep status', args: ['status'] },
];
const TIME = '/usr/bin/time';
/** The goal: each of the three answers within this much CPU. */
const GOAL_CPU_S = 0.3;

interface Tree {
  label: string;
  dir: string;
}

function parseArgs(argv: string[]): { runs: number; trees: Tree[] } {
  let runs = 7;
  const trees: Tree[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (a === '--runs' && Number.isInteger(Number(v)) && Number(v) > 0) runs = Number(v);
    else if (a === '--tree' && v && /^[\w-]+=./.test(v)) {
      const [label, dir] = [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)];
      trees.push({ label, dir: path.resolve(dir) });
    } else throw new Error(`bad argument ${a} ${v ?? ''}; usage: npx tsx bench/cli.ts [--runs N] [--tree LABEL=DIR]...`);
  }
  if (trees.length === 0) trees.push({ label: 'after', dir: process.cwd() });
  for (const t of trees) if (!existsSync(path.join(t.dir, 'bin', 'sweep.mjs'))) throw new Error(`${t.dir}: no bin/sweep.mjs`);
  return { runs, trees };
}

/** How the tree's bin/sweep.mjs runs the CLI. */
async function mode(dir: string): Promise<string> {
  const distModule = path.join(dir, 'bin', 'dist.mjs');
  if (!existsSync(distModule)) return 'tsx (no dist/)';
  const { staleness } = (await import(pathToFileURL(distModule).href)) as { staleness(): string | null };
  const why = staleness();
  return why === null ? 'compiled (dist/)' : `tsx (${why})`;
}

interface Sample {
  cpu: number;
  wall: number;
}

/** One run of `node bin/sweep.mjs ...args` in `dir`: its CPU and wall seconds. */
function runOnce(dir: string, args: string[], env: NodeJS.ProcessEnv): Sample {
  const out = path.join(env.SWEEP_HOME!, 'time.txt');
  const r = spawnSync(TIME, ['-o', out, '-f', '%U %S %e', process.execPath, 'bin/sweep.mjs', ...args], { cwd: dir, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sweep ${args.join(' ')} in ${dir} exited with ${r.status}:\n${r.stderr}`);
  const [user, sys, wall] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(/\s+/).map(Number);
  return { cpu: user + sys, wall };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

async function main() {
  const { runs, trees } = parseArgs(process.argv.slice(2));
  if (!existsSync(TIME)) throw new Error(`${TIME} not found (GNU time measures the CPU of a whole process)`);
  const start = runStart();
  const results: Array<{ tree: string; dir: string; mode: string; command: string; cpu: number[]; wall: number[] }> = [];
  for (const tree of trees) {
    const home = mkdtempSync(path.join(os.tmpdir(), 'sweep-bench-cli-'));
    const env: NodeJS.ProcessEnv = { ...process.env, SWEEP_HOME: home, CI: 'true' };
    delete env.DATABASE_URL;
    const how = await mode(tree.dir);
    try {
      // Starts the embedded database's server and migrates it; status then finds it running.
      // A busy machine can take longer than the CLI waits for a new database: ask again.
      for (let attempt = 1; ; attempt++) {
        const r = spawnSync(process.execPath, ['bin/sweep.mjs', 'db', 'migrate'], { cwd: tree.dir, env, encoding: 'utf8' });
        if (r.status === 0) break;
        if (attempt === 3) throw new Error(`sweep db migrate in ${tree.dir} failed:\n${r.stderr}`);
      }
      for (const c of COMMANDS) {
        runOnce(tree.dir, c.args, env); // warm: the file cache, tsx's transform cache
        const samples = Array.from({ length: runs }, () => runOnce(tree.dir, c.args, env));
        const row = { tree: tree.label, dir: tree.dir, mode: how, command: c.name, cpu: samples.map((s) => r2(s.cpu)), wall: samples.map((s) => r2(s.wall)) };
        results.push(row);
        console.log(`${tree.label} ${c.name}: cpu ${r2(median(row.cpu))} s (${row.cpu.join(', ')}), wall ${r2(median(row.wall))} s [${how}]`);
      }
    } finally {
      execFileSync(process.execPath, ['bin/sweep.mjs', 'db', 'stop'], { cwd: tree.dir, env, stdio: 'ignore' });
      rmSync(home, { recursive: true, force: true });
    }
  }

  const rows = results.map((r) => [r.tree, r.command, r2(median(r.cpu)), `${Math.min(...r.cpu)}–${Math.max(...r.cpu)}`, r2(median(r.wall)), r.mode]);
  const markdown = [
    `Each command run ${runs} times as a new process (after one unmeasured run); CPU is user + sys of the process and the children it waits for (GNU time), in seconds; median, and the range.`,
    `Goal: at most ${GOAL_CPU_S} s of CPU each. \`status\` finds the embedded database's server running and no sweeps.`,
    'On a busy machine CPU time rises too (shared caches and cores): compare rows measured in the same run, and read the load above.',
    '',
    markdownTable(['tree', 'command', 'CPU s (median)', 'CPU s (range)', 'wall s (median)', 'runs as'], rows),
  ].join('\n');
  const files = writeResults({ name: 'cli', title: 'CLI start-up: CPU and wall time of --help, plan and status', markdown, data: { runs, goalCpuSeconds: GOAL_CPU_S, results }, ...start });
  console.log(`wrote ${files.md} and ${files.json}`);
}

await main();
