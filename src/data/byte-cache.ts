import { readFile } from 'node:fs/promises';

/**
 * Encoded image bytes kept in memory, so epochs after the first do not touch the disk.
 * Files are ~10-25 KB; the budget bounds the total (default 1 GiB, ~50k-100k images); files
 * past the budget are read from disk each time (the OS page cache usually still has them).
 */
export class ByteCache {
  private readonly files = new Map<string, Buffer>();
  private used = 0;

  constructor(readonly maxBytes = 1 << 30) {}

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.files.size;
  }

  has(path: string): boolean {
    return this.files.has(path);
  }

  /** Keeps the bytes if the budget allows; returns whether it did. */
  put(path: string, bytes: Buffer): boolean {
    if (this.files.has(path)) return true;
    if (this.used + bytes.length > this.maxBytes) return false;
    this.files.set(path, bytes);
    this.used += bytes.length;
    return true;
  }

  get(path: string): Buffer | undefined {
    return this.files.get(path);
  }

  async read(path: string): Promise<Buffer> {
    const hit = this.files.get(path);
    if (hit) return hit;
    const bytes = await readFile(path);
    this.put(path, bytes);
    return bytes;
  }
}
