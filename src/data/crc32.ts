/**
 * CRC-32 (ISO-HDLC, as PNG and zlib use): Node's `zlib.crc32` where it exists (Node >= 20.15,
 * 22.2), else a table implementation. Both give the same value for the same bytes.
 */
import zlib from 'node:zlib';

const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** The CRC-32 of `data`, as an unsigned 32-bit number. */
export const crc32: (data: Uint8Array) => number = typeof native === 'function' ? (data) => native(data) >>> 0 : crc32Table;

let TABLE: Uint32Array | undefined;

/** The table implementation: what older Node (without zlib.crc32) uses; exported for its test. */
export function crc32Table(data: Uint8Array): number {
  if (!TABLE) {
    TABLE = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      TABLE[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
