import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/train/atomic-file.ts';
import { sha256File } from '../../src/util/hash.ts';
import { FILE_LIST, checkFiles, checkListed, describeProblems, modelProblems, moveAside, writeFileList } from '../../src/train/integrity.ts';

let root: string;
let dir: string;

const manifest = { modelTopology: {}, weightsManifest: [{ paths: ['weights.bin'], weights: [{ name: 'k', shape: [3, 3, 8, 8], dtype: 'float32' }] }] };

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'integrity-'));
  dir = path.join(root, 'pretrain-e0002');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(manifest));
  writeFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(576 * 4, 1));
  writeFileSync(path.join(dir, 'optimizer.bin'), Buffer.alloc(64, 2));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('checkpoint file lists', () => {
  it('records size and sha256 of every file, and an intact directory passes', () => {
    const list = writeFileList(dir);
    expect(Object.keys(list.files)).toEqual(['model.json', 'optimizer.bin', 'weights.bin']);
    expect(list.files['weights.bin']).toMatchObject({ bytes: 2304, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(JSON.parse(readFileSync(path.join(dir, FILE_LIST), 'utf8'))).toEqual(list);
    expect(checkFiles(dir, ['model.json'])).toEqual([]);
  });

  it.each([
    ['a truncated file', () => truncateSync(path.join(dir, 'weights.bin'), 40), 'weights.bin', '40 bytes where 2304 were written'],
    ['a flipped byte', () => {
      const p = path.join(dir, 'optimizer.bin');
      const b = readFileSync(p);
      b[10] ^= 0xff;
      writeFileSync(p, b);
    }, 'optimizer.bin', 'its contents changed since it was written (sha256 differs)'],
    ['a missing file', () => unlinkSync(path.join(dir, 'weights.bin')), 'weights.bin', 'missing'],
    ['a missing required file', () => unlinkSync(path.join(dir, 'model.json')), 'model.json', 'missing'],
  ])('names %s and what is wrong with it', (_what, damage, file, problem) => {
    writeFileList(dir);
    damage();
    const problems = checkFiles(dir, ['model.json']);
    expect(problems).toEqual([{ file: path.join(dir, file), problem }]);
    expect(describeProblems(problems)).toBe(`${path.join(dir, file)}: ${problem}`);
  });

  it('takes the hashes of files it has just written from the bytes written, in the same format', () => {
    const fresh = path.join(root, 'fresh');
    writeFileAtomic(path.join(fresh, 'weights.bin'), Buffer.alloc(2304, 7));
    writeFileAtomic(path.join(fresh, 'model.json'), JSON.stringify(manifest));
    writeFileSync(path.join(fresh, 'extra.bin'), Buffer.alloc(10, 1)); // not through the writer: read
    // The disk hands back other bytes than were written (same inode, size and mtime): the list
    // records what the writer wrote, so the damage shows at the next check.
    const weights = path.join(fresh, 'weights.bin');
    const st = statSync(weights);
    writeFileSync(weights, Buffer.alloc(2304, 8));
    utimesSync(weights, st.atimeMs / 1000, st.mtimeMs / 1000);
    const list = writeFileList(fresh);
    expect(list.files['model.json']).toEqual({ bytes: JSON.stringify(manifest).length, sha256: sha256File(path.join(fresh, 'model.json')) });
    expect(list.files['extra.bin']).toEqual({ bytes: 10, sha256: sha256File(path.join(fresh, 'extra.bin')) });
    expect(list.files['weights.bin']!.sha256).not.toBe(sha256File(weights));
    expect(checkFiles(fresh, ['model.json'])).toEqual([{ file: weights, problem: 'its contents changed since it was written (sha256 differs)' }]);
    // A record is used once: listed again, the file is read.
    expect(writeFileList(fresh).files['weights.bin']!.sha256).toBe(sha256File(weights));
  });

  it('checks a directory written before file lists by its manifest: a truncated weights file is caught', () => {
    expect(checkFiles(dir, ['model.json'])).toEqual([]);
    truncateSync(path.join(dir, 'weights.bin'), 40);
    expect(checkFiles(dir, ['model.json'])).toEqual([{ file: path.join(dir, 'weights.bin'), problem: '40 bytes where its manifest (model.json) needs 2304' }]);
    writeFileSync(path.join(dir, 'model.json'), '{"modelTopology": {');
    expect(checkFiles(dir, ['model.json'])).toEqual([{ file: path.join(dir, 'model.json'), problem: 'not valid JSON (truncated?)' }]);
  });

  it.each([
    // listed, damage, problem of the named file (null: intact)
    [true, 'none', null],
    [false, 'none', null],
    [true, 'flip weights', ['weights.bin', 'its contents changed since it was written (sha256 differs)']],
    [false, 'flip weights', null], // without a list, only lengths can be checked
    [true, 'truncate weights', ['weights.bin', '40 bytes where 2304 were written']],
    [false, 'truncate weights', ['weights.bin', '40 bytes where its manifest (model.json) needs 2304']],
    [true, 'remove model.json', ['model.json', 'missing']],
    [false, 'remove model.json', ['model.json', 'missing']],
  ] as const)('modelProblems, file list %s, %s: %j', (listed, damage, want) => {
    if (listed) writeFileList(dir);
    const weights = path.join(dir, 'weights.bin');
    if (damage === 'flip weights') writeFileSync(weights, Buffer.alloc(576 * 4, 3));
    if (damage === 'truncate weights') truncateSync(weights, 40);
    if (damage === 'remove model.json') unlinkSync(path.join(dir, 'model.json'));
    expect(modelProblems(dir)).toEqual(want ? [{ file: path.join(dir, want[0]), problem: want[1] }] : []);
  });

  it('checkListed: only the named files, and nothing without a list', () => {
    truncateSync(path.join(dir, 'optimizer.bin'), 1);
    expect(checkListed(dir, ['weights.bin'])).toEqual([]);
    writeFileList(dir);
    truncateSync(path.join(dir, 'weights.bin'), 40);
    unlinkSync(path.join(dir, 'optimizer.bin'));
    expect(checkListed(dir, ['model.json'])).toEqual([]);
    expect(checkListed(dir, ['weights.bin', 'optimizer.bin', 'not-listed.bin'])).toEqual([
      { file: path.join(dir, 'weights.bin'), problem: '40 bytes where 2304 were written' },
      { file: path.join(dir, 'optimizer.bin'), problem: 'missing' },
    ]);
  });

  it('moves a damaged directory aside under a dot name, kept for inspection', () => {
    const to = moveAside(dir, new Date('2026-12-04T10:00:00.000Z'));
    expect(path.basename(to)).toBe('.damaged-pretrain-e0002-2026-12-04T10-00-00-000Z');
    expect(readdirSync(root)).toEqual([path.basename(to)]);
    expect(readdirSync(to).sort()).toEqual(['model.json', 'optimizer.bin', 'weights.bin']);
  });
});
