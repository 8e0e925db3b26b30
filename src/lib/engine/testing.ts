/**
 * Test helper (Node only): the engines' FetchBytes over this checkout's public/ folder, so tests load
 * the bundled models and data through the same URLs the app fetches.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { importDataset, importedTaskInfo, taskDataUrl } from '../data/imported';
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

/**
 * The first `chars` characters of Moby-Dick's validation text as an imported causal-LM task `id`
 * (IndexedDB: the caller imports fake-indexeddb): at 2,500 its validation split is one line (66
 * bytes), so an evaluation on SwiftShader is one or two batches instead of up to eight. The split
 * cuts at line breaks: 3,000 characters leave it empty.
 */
export async function mobyPart(id: string, chars = 2500): Promise<{ task: string; corpusUrl: string }> {
  const text = (await readFile(join(PUBLIC_DIR, 'data/moby-dick/validation.txt'), 'utf8')).slice(0, chars);
  const meta = await importDataset(text, {
    id,
    name: 'moby part',
    fileName: 'moby.txt',
    format: 'txt',
    bytes: text.length,
    taskType: 'CAUSAL_LM',
  });
  const info = importedTaskInfo(meta);
  return { task: info.id, corpusUrl: taskDataUrl(info, '/') };
}
