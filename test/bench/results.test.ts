import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { busyNote, commandLine, markdownTable, writeResults } from '../../bench/lib/results.ts';

describe('markdownTable', () => {
  it('writes a header, a rule and one line a row, escaping pipes in cells', () => {
    expect(markdownTable(['a', 'b'], [[1, 'x|y'], ['z', 2.5]])).toBe(['| a | b |', '| --- | --- |', '| 1 | x\\|y |', '| z | 2.5 |'].join('\n'));
  });
});

describe('commandLine', () => {
  it('gives the script relative to the working directory and quotes arguments with spaces', () => {
    const argv = ['/usr/bin/node', path.join(process.cwd(), 'bench', 'x.ts'), '--n', '3', 'two words'];
    expect(commandLine(argv)).toBe('npx tsx bench/x.ts --n 3 "two words"');
  });
});

describe('busyNote', () => {
  it.each([
    { start: [1.5, 1, 1], end: [1.9, 1, 1], cores: 2, busy: false },
    { start: [2, 1, 1], end: [2, 1, 1], cores: 2, busy: false },
    { start: [9, 1, 1], end: [1, 1, 1], cores: 2, busy: true },
    { start: [1, 1, 1], end: [3.1, 1, 1], cores: 2, busy: true },
  ])('one-minute load $start.0 -> $end.0 on $cores cores: busy $busy', ({ start, end, cores, busy }) => {
    expect(busyNote(start, end, cores) !== '').toBe(busy);
  });
});

describe('writeResults', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the page and the JSON side by side, each with the machine, load, command, date and status', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sweep-results-'));
    const startedAt = new Date(Date.now() - 90_000);
    const { md, json } = writeResults({
      name: 'demo',
      title: 'A demo',
      markdown: markdownTable(['k', 'v'], [['n', 7]]),
      data: { n: 7 },
      loadAtStart: [0.5, 0.25, 0.125],
      startedAt,
      status: 'partial: epoch 1 of 2',
      dir,
    });
    expect(readdirSync(dir).sort()).toEqual(['demo.json', 'demo.md']);
    const page = readFileSync(md, 'utf8');
    expect(page.startsWith('# A demo\n')).toBe(true);
    expect(page).toMatch(/^- machine: .+ cores/m);
    expect(page).toContain('- load average (1/5/15 min): 0.5 / 0.25 / 0.125 at the start, ');
    expect(page).toMatch(/^- command: `npx tsx .+`$/m);
    expect(page).toContain(`- date: ${startedAt.toISOString()}, ran 9`);
    expect(page).toContain('- status: partial: epoch 1 of 2');
    expect(page).toContain('| n | 7 |');
    const doc = JSON.parse(readFileSync(json, 'utf8'));
    expect(doc).toMatchObject({ name: 'demo', title: 'A demo', date: startedAt.toISOString(), status: 'partial: epoch 1 of 2', data: { n: 7 } });
    expect(doc.load.start).toEqual([0.5, 0.25, 0.125]);
    expect(doc.load.end).toHaveLength(3);
    expect(doc.seconds).toBeGreaterThanOrEqual(90);
    expect(doc.machine.cores).toBeGreaterThan(0);
  });

  it('replaces an earlier run of the same name and leaves no temporary file', () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sweep-results-'));
    writeResults({ name: 'demo', title: 'first', markdown: 'one', data: 1, dir });
    writeResults({ name: 'demo', title: 'second', markdown: 'two', data: 2, dir });
    expect(readdirSync(dir).sort()).toEqual(['demo.json', 'demo.md']);
    expect(readFileSync(path.join(dir, 'demo.md'), 'utf8')).toContain('# second');
    expect(JSON.parse(readFileSync(path.join(dir, 'demo.json'), 'utf8'))).toMatchObject({ status: 'complete', seconds: null, data: 2 });
  });
});
