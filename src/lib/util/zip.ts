/**
 * A store-only ZIP writer (no compression): local file headers, the data, a central directory and
 * its end record, as PKWARE's APPNOTE.TXT lays them out (version 2.0, no ZIP64, so at most 65,535
 * entries and 4 GiB). Enough for the app to hand over a folder (the exported Python project) as one
 * download; `unzip`, Python's zipfile and every OS's archive tool read it.
 */
import { PeftLabError } from '../errors';

export interface ZipEntry {
  /** '/'-separated path inside the archive. */
  path: string;
  data: Uint8Array | string;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, the one ZIP and PNG use). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** DOS date and time of a fixed moment (1980-01-01 00:00), so the same files give the same bytes. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
/** General purpose flag bit 11: names are UTF-8. */
const UTF8_FLAG = 0x0800;

export function zipStore(entries: readonly ZipEntry[]): Uint8Array {
  if (entries.length > 0xffff)
    throw new PeftLabError(`a zip holds at most 65,535 files here, got ${entries.length}`);
  const enc = new TextEncoder();
  const files = entries.map((e) => {
    if (e.path === '' || e.path.startsWith('/') || e.path.split('/').includes('..')) {
      throw new PeftLabError(`zip entry path ${JSON.stringify(e.path)} must be relative, without ".."`);
    }
    const data = typeof e.data === 'string' ? enc.encode(e.data) : e.data;
    return { name: enc.encode(e.path), data, crc: crc32(data) };
  });
  const localSize = files.reduce((n, f) => n + 30 + f.name.length + f.data.length, 0);
  const centralSize = files.reduce((n, f) => n + 46 + f.name.length, 0);
  if (localSize + centralSize > 0xffffffff)
    throw new PeftLabError('the files are over the 4 GiB a zip without ZIP64 holds');
  const out = new Uint8Array(localSize + centralSize + 22);
  const view = new DataView(out.buffer);
  let at = 0;
  const u16 = (v: number): void => {
    view.setUint16(at, v, true);
    at += 2;
  };
  const u32 = (v: number): void => {
    view.setUint32(at, v >>> 0, true);
    at += 4;
  };
  const offsets: number[] = [];
  for (const f of files) {
    offsets.push(at);
    u32(0x04034b50); // local file header
    u16(20); // version needed: 2.0
    u16(UTF8_FLAG);
    u16(0); // method: stored
    u16(DOS_TIME);
    u16(DOS_DATE);
    u32(f.crc);
    u32(f.data.length); // compressed size = size
    u32(f.data.length);
    u16(f.name.length);
    u16(0); // no extra field
    out.set(f.name, at);
    at += f.name.length;
    out.set(f.data, at);
    at += f.data.length;
  }
  const centralStart = at;
  files.forEach((f, i) => {
    u32(0x02014b50); // central directory header
    u16(20); // made by: 2.0
    u16(20);
    u16(UTF8_FLAG);
    u16(0);
    u16(DOS_TIME);
    u16(DOS_DATE);
    u32(f.crc);
    u32(f.data.length);
    u32(f.data.length);
    u16(f.name.length);
    u16(0); // extra
    u16(0); // comment
    u16(0); // disk
    u16(0); // internal attributes
    u32(0); // external attributes
    u32(offsets[i]!);
    out.set(f.name, at);
    at += f.name.length;
  });
  const centralEnd = at;
  u32(0x06054b50); // end of central directory
  u16(0);
  u16(0);
  u16(files.length);
  u16(files.length);
  u32(centralEnd - centralStart);
  u32(centralStart);
  u16(0); // comment length
  return out;
}
