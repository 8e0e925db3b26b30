/**
 * Test helper (Node only): the engines' FetchBytes over this checkout's public/ folder, so tests load
 * the bundled models and data through the same URLs the app fetches.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileLoadError } from '../errors';
import type { FetchBytes } from './model-files';

export const PUBLIC_DIR = join(process.cwd(), 'public');

export const publicFetch: FetchBytes = async (url) => {
  try {
    const b = await readFile(join(PUBLIC_DIR, url));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  } catch {
    throw new FileLoadError(`could not read ${url}`);
  }
};
