/**
 * `sweep eval`: a reader's accuracy on a labelled dataset: per character, per sequence, by
 * position, and the confusions it makes most.
 */
import path from 'node:path';
import { loadDataset } from '../data/dataset.ts';
import type { Reader, ReadResult } from './reader.ts';

export interface Confusion {
  truth: string;
  read: string;
  count: number;
}

export interface EvalReport {
  data: string;
  images: number;
  /** Items the dataset loader skipped or the reader could not read. */
  unreadable: Array<{ file: string; problem: string }>;
  char_acc: number;
  seq_acc: number;
  by_position: number[];
  confusions: Confusion[];
}

/** Accuracy of texts read against labels (same order). Pure. */
export function scoreTexts(read: readonly string[], labels: readonly string[], topConfusions = 10): Omit<EvalReport, 'data' | 'images' | 'unreadable'> {
  const length = labels[0]?.length ?? 0;
  const byPos = new Array<number>(length).fill(0);
  const confusions = new Map<string, number>();
  let chars = 0;
  let seqs = 0;
  read.forEach((text, i) => {
    const label = labels[i];
    let all = true;
    for (let p = 0; p < length; p++) {
      if (text[p] === label[p]) {
        byPos[p]++;
        chars++;
      } else {
        all = false;
        const key = `${label[p]}\u0000${text[p] ?? ''}`;
        confusions.set(key, (confusions.get(key) ?? 0) + 1);
      }
    }
    if (all) seqs++;
  });
  const n = read.length;
  const top = [...confusions.entries()]
    .map(([k, count]) => {
      const [truth, r] = k.split('\u0000');
      return { truth, read: r, count };
    })
    .sort((a, b) => b.count - a.count || a.truth.localeCompare(b.truth) || a.read.localeCompare(b.read))
    .slice(0, topConfusions);
  return {
    char_acc: n && length ? chars / (n * length) : 0,
    seq_acc: n ? seqs / n : 0,
    by_position: byPos.map((c) => (n ? c / n : 0)),
    confusions: top,
  };
}

/** Reads every image of a labelled directory and scores the reader on it. */
export async function evaluateReader(reader: Reader, dir: string, opts: { batch?: number; resize?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<EvalReport> {
  const { input, label } = reader.manifest;
  const ds = await loadDataset(dir, {
    spec: { charset: label.charset, length: label.length, ...(label.case && label.case !== 'lower' ? { case: label.case } : {}) },
    height: input.height,
    width: input.width,
    skipBad: true,
  });
  const files = ds.items.map((it) => path.join(ds.dir, it.file));
  const byFile = new Map(ds.items.map((it) => [path.join(ds.dir, it.file), it.label]));
  const results: ReadResult[] = [];
  const unreadable = ds.skipped.map((s) => ({ file: s.file, problem: s.problem }));
  const chunk = 512;
  for (let i = 0; i < files.length; i += chunk) {
    const out = await reader.read(files.slice(i, i + chunk), { batch: opts.batch, resize: opts.resize });
    results.push(...out.results);
    unreadable.push(...out.problems);
    opts.onProgress?.(Math.min(files.length, i + chunk), files.length);
  }
  const scored = scoreTexts(
    results.map((r) => r.text),
    results.map((r) => byFile.get(r.file)!),
  );
  return { data: dir, images: results.length, unreadable, ...scored };
}
