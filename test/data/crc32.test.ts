import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Table } from '../../src/data/crc32.ts';

describe('crc32', () => {
  it('gives the check value of CRC-32/ISO-HDLC, by zlib and by the table alike', () => {
    const check = Buffer.from('123456789', 'latin1');
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Table(check)).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    expect(crc32Table(new Uint8Array(0))).toBe(0);
  });

  it('the table implementation matches zlib on any bytes', () => {
    for (const n of [1, 13, 255, 4096, 65_537]) {
      const bytes = randomBytes(n);
      const expected = typeof zlib.crc32 === 'function' ? zlib.crc32(bytes) >>> 0 : crc32(bytes);
      expect(crc32Table(bytes)).toBe(expected);
      expect(crc32(bytes.subarray(1))).toBe(crc32Table(bytes.subarray(1)));
    }
  });
});
