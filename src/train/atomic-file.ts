/**
 * Writing a file whole or not at all, and remembering what was written so that a file list
 * (integrity.ts) need not read it back. Apart from io.ts, which loads TensorFlow.js, so that
 * readers of file lists (the database commands) do not load it.
 */
import { closeSync, fstatSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { sha256Hex } from '../util/hash.ts';

/** What this process wrote to a file: its size and sha256, and the inode and mtime it got. */
interface Written {
  bytes: number;
  sha256: string;
  ino: number;
  mtimeMs: number;
}

/**
 * The files written last (a checkpoint's or a model's), so that their file list takes the
 * hashes from the bytes the writer had instead of reading every file back. Bounded: a
 * file nobody lists only costs a slot until it is pushed out.
 */
const recentlyWritten = new Map<string, Written>();
const RECENTLY_WRITTEN_MAX = 256;

/**
 * Size and sha256 of `path` as writeFileAtomic wrote it, when it is still that file (same
 * inode, size and mtime to the millisecond); undefined otherwise. Each record is taken once.
 */
export function takeWritten(path: string): { bytes: number; sha256: string } | undefined {
  const key = resolve(path);
  const w = recentlyWritten.get(key);
  if (!w) return undefined;
  recentlyWritten.delete(key);
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st || st.ino !== w.ino || st.size !== w.bytes || Math.abs(st.mtimeMs - w.mtimeMs) >= 1) return undefined;
  return { bytes: w.bytes, sha256: w.sha256 };
}

function remember(path: string, w: Written): void {
  const key = resolve(path);
  recentlyWritten.delete(key);
  recentlyWritten.set(key, w);
  if (recentlyWritten.size > RECENTLY_WRITTEN_MAX) recentlyWritten.delete(recentlyWritten.keys().next().value!);
}

/** Writes a file so that readers see the old content or the new, never a torn one. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    let written: Written;
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
      const st = fstatSync(fd);
      written = { bytes: bytes.length, sha256: sha256Hex(bytes), ino: st.ino, mtimeMs: st.mtimeMs };
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    remember(path, written);
  } catch (err) {
    // A full disk fails the write part-way: the partial file would keep its space.
    rmSync(tmp, { force: true });
    throw err;
  }
}
