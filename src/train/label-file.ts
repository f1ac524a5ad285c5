/**
 * `label.json` beside a trained model's directory: how its classes read (charset, length,
 * case), so a model directory or a finished trial given to `sweep predict` prints the letters
 * it was trained on. Absent (models trained before it was written): the report's labels.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './io.ts';
import { LABEL_CASES, type LabelSpec } from './shape.ts';

export const LABEL_FILE = 'label.json';

/** Writes `<outDir>/label.json`. */
export function writeLabelFile(outDir: string, spec: LabelSpec): void {
  writeFileAtomic(join(outDir, LABEL_FILE), JSON.stringify({ length: spec.length, charset: spec.charset, case: spec.case ?? 'lower' }));
}

/** The label spec recorded beside `modelDir` (its parent's label.json), or null when there is none or it is unreadable. */
export function readLabelFile(modelDir: string): LabelSpec | null {
  const file = join(modelDir, '..', LABEL_FILE);
  if (!existsSync(file)) return null;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    if (typeof v.charset !== 'string' || !Number.isInteger(v.length)) return null;
    const c = (LABEL_CASES as readonly unknown[]).includes(v.case) && v.case !== 'lower' ? { case: v.case as LabelSpec['case'] } : {};
    return { charset: v.charset, length: v.length as number, ...c };
  } catch {
    return null;
  }
}
