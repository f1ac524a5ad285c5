/**
 * `sweep ensemble export` and `sweep export`: a self-contained reader directory.
 *
 *   DIR/manifest.json              what it is and the sha256 of every other file
 *   DIR/members/<trialId>/         each member's TF.js model (model.json + weights.bin)
 *   DIR/README.md                  how to use it
 *
 * Written into a temporary directory beside DIR and renamed into place, so DIR is either the
 * whole reader or untouched. A member whose model is not on this machine is an error naming
 * the trial and the paths looked at.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describeProblems, modelProblems } from '../train/integrity.ts';
import type { PrismaClient } from '../infra/db.ts';
import type { Env } from '../infra/env.ts';
import { DEFAULT_LABEL_SPEC } from '../data/charset.ts';
import { shapeFromParams, type LabelCase } from '../train/shape.ts';
import { UserError } from '../util/errors.ts';
import { sha256File } from '../util/hash.ts';
import { trialDir } from '../infra/artifacts.ts';
import { findInputShape, MANIFEST_FILE, READER_FORMAT, READER_VERSION, type CombineMethod, type Manifest, type ManifestMember } from './manifest.ts';
import type { EnsembleSummary, MemberScore } from './build.ts';

/** A manifest member before it has a directory in the reader, with where its model may be. */
export interface ExportMember extends Omit<ManifestMember, 'dir'> {
  /** Model paths recorded for the trial (its `model` artifact), looked at first. */
  recorded: string[];
}

export interface ExportPlan {
  name: string;
  method: CombineMethod;
  sweep: { id: string; name: string } | null;
  datasets: Manifest['datasets'];
  /** How the members' classes read; `case` absent: `lower`. */
  label: { length: number; charset: string; case?: LabelCase };
  members: ExportMember[];
}

/** Where a trial's model is on this machine, or a UserError naming every path looked at. */
export function locateModel(m: Pick<ExportMember, 'trialId' | 'recorded'>, env: Env = process.env): string {
  const candidates = [...new Set([...m.recorded, path.join(trialDir(m.trialId, env), 'model')])];
  const found = candidates.find((d) => existsSync(path.join(d, 'model.json')));
  if (found) {
    const problems = modelProblems(found);
    if (problems.length) throw new UserError(`trial ${m.trialId}: its model in ${found} is damaged: ${describeProblems(problems)}`);
    return found;
  }
  throw new UserError(
    `trial ${m.trialId}: its model is not on this machine (looked at ${candidates.join(', ')}). ` +
      'Run the export where the trial trained, or point SWEEP_ARTIFACTS at the storage the workers share',
  );
}

function isEmptyDir(dir: string): boolean {
  return statSync(dir).isDirectory() && readdirSync(dir).length === 0;
}

/** Writes the reader to `out`; refuses a non-empty `out` unless `force`. Returns the manifest. */
export function writeReader(plan: ExportPlan, out: string, opts: { force?: boolean; env?: Env } = {}): Manifest {
  if (existsSync(out) && !isEmptyDir(out) && !opts.force) {
    throw new UserError(`${out}: exists and is not empty; choose another --out or add --force to replace it`);
  }
  const sources = plan.members.map((m) => locateModel(m, opts.env));
  const first = JSON.parse(readFileSync(path.join(sources[0], 'model.json'), 'utf8'));
  const shape = findInputShape(first);
  const trained = shapeFromParams(plan.members[0].params);
  const tmp = `${path.resolve(out)}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    const members: ManifestMember[] = plan.members.map(({ recorded: _, ...m }, i) => {
      const dir = `members/${m.trialId}`;
      cpSync(sources[i], path.join(tmp, dir), { recursive: true });
      return { ...m, dir };
    });
    writeFileSync(path.join(tmp, 'README.md'), readme(plan));
    const files: Record<string, string> = {};
    for (const rel of listFiles(tmp)) files[rel] = sha256File(path.join(tmp, rel));
    const manifest: Manifest = {
      format: READER_FORMAT,
      version: READER_VERSION,
      name: plan.name,
      method: plan.method,
      createdAt: new Date().toISOString(),
      sweep: plan.sweep,
      input: { height: shape?.[1] ?? trained.height, width: shape?.[2] ?? trained.width, channels: 3 },
      label: { length: plan.label.length, classes: plan.label.charset.length, charset: plan.label.charset, case: plan.label.case ?? 'lower' },
      datasets: plan.datasets,
      members,
      files,
    };
    writeFileSync(path.join(tmp, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
    swapInto(tmp, path.resolve(out));
    return manifest;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Moves the finished `tmp` to `out`, replacing what was there only once tmp is complete. */
function swapInto(tmp: string, out: string): void {
  mkdirSync(path.dirname(out), { recursive: true });
  if (!existsSync(out)) return renameSync(tmp, out);
  const old = `${out}.old-${process.pid}`;
  renameSync(out, old);
  renameSync(tmp, out);
  rmSync(old, { recursive: true, force: true });
}

function listFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(root, r));
    else out.push(r);
  }
  return out.sort();
}

function readme(plan: ExportPlan): string {
  const what = plan.method === 'single' ? 'one trained model' : `${plan.members.length} models combined by ${plan.method === 'vote' ? 'majority vote per character' : 'averaging their probabilities'}`;
  return `# ${plan.name}: a CAPTCHA reader exported by sweep

${what}${plan.sweep ? `, from sweep ${plan.sweep.name}` : ''}. \`manifest.json\` lists the members (trial ids,
parameters, weights, accuracies), the input size, the charset and the sha256 of every file; a reader
whose files do not match is refused.

Read images:

    npx sweep predict ${'<this directory>'} image1.png image2.png [--json]
    npx sweep eval ${'<this directory>'} --data labelled-dir/ [--json]

From TypeScript:

    import { loadReader } from 'sweep';
    const reader = await loadReader('path/to/this/directory');
    const { results, problems } = await reader.read(['a.png', 'b.png']);
    for (const r of results) console.log(r.file, r.text, r.confidence.toFixed(3));
    reader.dispose();

Each member is a TF.js layers model (\`members/<trial>/model.json\` + \`weights.bin\`): TensorFlow.js
loads it on any backend (\`tf.loadLayersModel\`, after registering sweep's custom layers).
`;
}

function memberMetrics(m: MemberScore): Record<string, unknown> {
  return { val_char_acc: m.val.char_acc, val_seq_acc: m.val.seq_acc, test_char_acc: m.test?.char_acc ?? null, test_seq_acc: m.test?.seq_acc ?? null, metric: m.metric };
}

/** The export plan of a stored ensemble, by `SWEEP/NAME`, name (if unique) or id. */
export async function ensemblePlan(prisma: PrismaClient, ref: string): Promise<{ id: string; plan: ExportPlan }> {
  const slash = ref.indexOf('/');
  const where = slash > 0 ? { name: ref.slice(slash + 1), sweep: { name: ref.slice(0, slash) } } : { OR: [{ id: ref }, { name: ref }] };
  const found = await prisma.ensemble.findMany({ where, include: { sweep: { select: { id: true, name: true } }, members: { include: { trial: { select: { params: true, artifacts: { where: { kind: 'model' }, select: { path: true } } } } } } } });
  if (found.length === 0) throw new UserError(`no ensemble ${JSON.stringify(ref)}; \`sweep ensemble list\` lists them`);
  if (found.length > 1) throw new UserError(`${found.length} ensembles are named ${JSON.stringify(ref)} (sweeps ${found.map((e) => e.sweep.name).join(', ')}); name one as SWEEP/NAME`);
  const e = found[0];
  const summary = e.summary as unknown as EnsembleSummary | null;
  const scores = new Map((summary?.members ?? []).map((m) => [m.trialId, m]));
  const members = [...e.members].sort((a, b) => a.rank - b.rank).map((m) => {
    const s = scores.get(m.trialId);
    return {
      trialId: m.trialId,
      sweep: e.sweep.name,
      rank: m.rank,
      weight: m.weight,
      params: (m.trial.params ?? {}) as Record<string, unknown>,
      metrics: s ? memberMetrics(s) : {},
      recorded: m.trial.artifacts.map((a) => a.path),
    };
  });
  const stored = summary?.label;
  const label = stored ? { length: stored.length, charset: stored.charset, ...(stored.case ? { case: stored.case } : {}) } : { length: DEFAULT_LABEL_SPEC.length, charset: DEFAULT_LABEL_SPEC.charset };
  return {
    id: e.id,
    plan: { name: e.name, method: e.method as CombineMethod, sweep: e.sweep, datasets: summary?.datasets ?? { val: null, test: null }, label, members },
  };
}

/** The export plan of one finished trial (a reader of one member). */
export async function trialPlan(prisma: PrismaClient, trialId: string): Promise<ExportPlan> {
  const t = await prisma.trial.findUnique({
    where: { id: trialId },
    include: { sweep: { select: { id: true, name: true } }, artifacts: { where: { kind: 'model' }, select: { path: true } }, predictions: { select: { split: true, datasetId: true } } },
  });
  if (!t) throw new UserError(`no trial ${trialId}`);
  if (t.status !== 'finished') throw new UserError(`trial ${trialId} is ${t.status}; only a finished trial has a model to export`);
  const s = (t.summary ?? {}) as Record<string, unknown>;
  const pick = (k: string) => (typeof s[k] === 'number' ? s[k] : null);
  return {
    name: `${t.sweep.name}-${t.index}`,
    method: 'single',
    sweep: t.sweep,
    datasets: { val: t.predictions.find((p) => p.split === 'val')?.datasetId ?? null, test: t.predictions.find((p) => p.split === 'test')?.datasetId ?? null },
    label: shapeFromParams(t.params as Record<string, unknown> | null).label,
    members: [
      {
        trialId: t.id,
        sweep: t.sweep.name,
        rank: 1,
        weight: 1,
        params: (t.params ?? {}) as Record<string, unknown>,
        metrics: { val_char_acc: pick('val_char_acc'), val_seq_acc: pick('val_seq_acc'), test_char_acc: pick('test_char_acc'), test_seq_acc: pick('test_seq_acc'), metric: t.bestMetric },
        recorded: t.artifacts.map((a) => a.path),
      },
    ],
  };
}
