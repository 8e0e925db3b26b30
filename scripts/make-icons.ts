/**
 * Draws the app's icons into public/icons/ as PNGs, with nothing but node's zlib: a frozen weight
 * matrix W (a grid of slate cells) with a low-rank update in green, B beside it and A above it, the
 * picture of LoRA's `W + B·A`, on the header's dark slate.
 *
 *   npx tsx scripts/make-icons.ts
 *
 * `icon-*.png` have rounded corners on a transparent ground (purpose "any"); `icon-maskable-*.png`
 * fill the square and keep the drawing inside the central circle of radius 40% that every mask
 * leaves visible (purpose "maskable").
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';

type Rgb = readonly [number, number, number];
/** A rounded rectangle in the 512-unit design square. */
interface Shape {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  r: number;
  color: Rgb;
}

const HEADER: Rgb = [0x0f, 0x17, 0x2a]; // #0f172a, the app header's background
const FROZEN: Rgb = [0x47, 0x55, 0x69]; // #475569, slate: the frozen base weights
const TRAINED: Rgb = [0x22, 0xc5, 0x5e]; // #22c55e, the app's green: the trained adapter

/** W as a 4x4 grid of cells, B a tall strip to its right, A a wide strip above: box 104..408. */
function drawing(): Shape[] {
  const shapes: Shape[] = [];
  const [left, top, cell, gap] = [104, 168, 54, 8]; // 4 cells + 3 gaps = 240
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      const x0 = left + j * (cell + gap);
      const y0 = top + i * (cell + gap);
      shapes.push({ x0, y0, x1: x0 + cell, y1: y0 + cell, r: 8, color: FROZEN });
    }
  }
  shapes.push({ x0: 360, y0: 168, x1: 408, y1: 408, r: 10, color: TRAINED }); // B: d x r
  shapes.push({ x0: 104, y0: 104, x1: 344, y1: 152, r: 10, color: TRAINED }); // A: r x k
  return shapes;
}

function inRoundedRect(x: number, y: number, s: Shape): boolean {
  if (x < s.x0 || x > s.x1 || y < s.y0 || y > s.y1) return false;
  const cx = Math.min(Math.max(x, s.x0 + s.r), s.x1 - s.r);
  const cy = Math.min(Math.max(y, s.y0 + s.r), s.y1 - s.r);
  return (x - cx) ** 2 + (y - cy) ** 2 <= s.r ** 2;
}

/**
 * RGBA pixels of one icon, 4x4 supersampled for smooth edges. `maskable` fills the square and
 * shrinks the drawing to 80% about the centre (its corners then sit at 0.8 * 152 * sqrt(2) = 172 units
 * from the centre, inside the 204.8-unit safe circle).
 */
function render(size: number, maskable: boolean): Uint8Array {
  const ground: Shape = maskable
    ? { x0: 0, y0: 0, x1: 512, y1: 512, r: 0, color: HEADER }
    : { x0: 0, y0: 0, x1: 512, y1: 512, r: 96, color: HEADER };
  const scale = maskable ? 0.8 : 1;
  const shapes = drawing().map((s) => ({
    ...s,
    x0: 256 + (s.x0 - 256) * scale,
    y0: 256 + (s.y0 - 256) * scale,
    x1: 256 + (s.x1 - 256) * scale,
    y1: 256 + (s.y1 - 256) * scale,
    r: s.r * scale,
  }));
  const SS = 4;
  const out = new Uint8Array(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let [r, g, b, a] = [0, 0, 0, 0];
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const x = ((px + (sx + 0.5) / SS) * 512) / size;
          const y = ((py + (sy + 0.5) / SS) * 512) / size;
          if (!inRoundedRect(x, y, ground)) continue;
          const hit = shapes.find((s) => inRoundedRect(x, y, s));
          const c = hit ? hit.color : ground.color;
          r += c[0];
          g += c[1];
          b += c[2];
          a += 1;
        }
      }
      const o = (py * size + px) * 4;
      // Colours averaged over the covered samples only (straight alpha), alpha = coverage.
      out[o] = a ? Math.round(r / a) : 0;
      out[o + 1] = a ? Math.round(g / a) : 0;
      out[o + 2] = a ? Math.round(b / a) : 0;
      out[o + 3] = Math.round((a / (SS * SS)) * 255);
    }
  }
  return out;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** An 8-bit RGBA PNG: signature, IHDR, one IDAT (every row with filter 0), IEND. */
export function encodePng(size: number, rgba: Uint8Array): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type RGBA
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    raw.set(rgba.subarray(y * size * 4, (y + 1) * size * 4), y * (size * 4 + 1) + 1);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

const dir = path.join(import.meta.dirname, '..', 'public', 'icons');
mkdirSync(dir, { recursive: true });
const ICONS = [
  { file: 'icon-192.png', size: 192, maskable: false },
  { file: 'icon-512.png', size: 512, maskable: false },
  { file: 'icon-maskable-192.png', size: 192, maskable: true },
  { file: 'icon-maskable-512.png', size: 512, maskable: true },
  { file: 'apple-touch-icon.png', size: 180, maskable: true }, // iOS rounds the corners itself
];
for (const { file, size, maskable } of ICONS) {
  const png = encodePng(size, render(size, maskable));
  writeFileSync(path.join(dir, file), png);
  console.log(`${file}: ${size}x${size}, ${png.length} bytes`);
}
