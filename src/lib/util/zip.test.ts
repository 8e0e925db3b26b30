/**
 * The store-only zip writer: CRC-32's check value, the archive read back field by field (offsets,
 * sizes, names, data), refusals, and, where `unzip` is installed, unzip's own integrity test and
 * contents.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, zipStore } from './zip';

const ENTRIES = [
  { path: 'train.py', data: 'print("hi")\n' },
  { path: 'data/train.jsonl', data: '{"text": "Call me Ishmael."}\n' },
  { path: 'model/model.safetensors', data: Uint8Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff) },
  { path: 'tokenizer/ünïcode.json', data: '' },
];

/** Reads the archive back through its central directory. */
function readBack(zip: Uint8Array): { path: string; data: Uint8Array; crc: number }[] {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const eocd = zip.length - 22;
  expect(v.getUint32(eocd, true)).toBe(0x06054b50);
  const count = v.getUint16(eocd + 10, true);
  const size = v.getUint32(eocd + 12, true);
  let at = v.getUint32(eocd + 16, true);
  expect(at + size).toBe(eocd);
  const dec = new TextDecoder();
  const out = [];
  for (let i = 0; i < count; i++) {
    expect(v.getUint32(at, true)).toBe(0x02014b50);
    const crc = v.getUint32(at + 16, true);
    const len = v.getUint32(at + 24, true);
    const nameLen = v.getUint16(at + 28, true);
    const local = v.getUint32(at + 42, true);
    const path = dec.decode(zip.subarray(at + 46, at + 46 + nameLen));
    expect(v.getUint32(local, true)).toBe(0x04034b50);
    expect(v.getUint16(local + 26, true)).toBe(nameLen);
    const start = local + 30 + nameLen;
    out.push({ path, data: zip.subarray(start, start + len), crc });
    at += 46 + nameLen;
  }
  return out;
}

describe('zipStore', () => {
  it("computes CRC-32's check value", () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array())).toBe(0);
  });

  it('writes every file where its directory says, with its CRC', () => {
    const zip = zipStore(ENTRIES);
    const back = readBack(zip);
    const enc = new TextEncoder();
    expect(back.map((e) => e.path)).toEqual(ENTRIES.map((e) => e.path));
    back.forEach((e, i) => {
      const want = ENTRIES[i]!.data;
      const bytes = typeof want === 'string' ? enc.encode(want) : want;
      expect(Array.from(e.data)).toEqual(Array.from(bytes));
      expect(e.crc).toBe(crc32(bytes));
    });
    expect(zipStore(ENTRIES)).toEqual(zip); // a fixed timestamp: the same files, the same bytes
  });

  it('refuses absolute paths and ".."', () => {
    expect(() => zipStore([{ path: '/etc/x', data: '' }])).toThrow(/relative/);
    expect(() => zipStore([{ path: 'a/../../x', data: '' }])).toThrow(/relative/);
  });

  it('is read by unzip (when installed)', () => {
    if (spawnSync('unzip', ['-v']).status !== 0) {
      process.stderr.write('skipping the unzip check: no unzip on this machine\n');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'zip-'));
    try {
      const file = join(dir, 'p.zip');
      writeFileSync(file, zipStore(ENTRIES));
      const t = spawnSync('unzip', ['-t', file], { encoding: 'utf8' });
      expect(t.status, t.stdout + t.stderr).toBe(0);
      const p = spawnSync('unzip', ['-p', file, 'data/train.jsonl'], { encoding: 'utf8' });
      expect(p.stdout).toBe(ENTRIES[1]!.data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
