/**
 * Model and adapter folders on disk -> the lib's file objects. Every missing or unreadable path is
 * a FileLoadError naming it; sizes are checked before reading so a huge file is refused, not read.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import {
  FileLoadError,
  ModelConfigError,
  PeftLabError,
  TokenizerError,
  WeightsMismatchError,
} from '../lib/errors';
import type { AdapterFiles } from '../lib/io/peft-format';
import type { ModelFiles } from '../lib/model/load';
import { shardNames } from '../lib/model/shards';

/** safetensors and JSON files larger than this are refused before reading. */
export const MAX_FILE_BYTES = 4 * 1024 ** 3;

type ErrorClass = new (message: string) => PeftLabError;

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw new FileLoadError(`${path}: cannot read (${code ?? (e as Error).message})`);
  }
}

export function checkDir(dir: string, what: string): void {
  const st = statOrNull(dir);
  if (!st) throw new FileLoadError(`${dir}: no such ${what} folder`);
  if (!st.isDirectory()) throw new FileLoadError(`${dir}: is a file, but a ${what} folder was expected`);
}

export function exists(path: string): boolean {
  return statOrNull(path)?.isFile() ?? false;
}

/** Reads a whole file after checking it exists, is a file and is at most MAX_FILE_BYTES. */
export function readBytes(path: string, hint = ''): Uint8Array {
  const st = statOrNull(path);
  if (!st) throw new FileLoadError(`${path}: no such file${hint}`);
  if (!st.isFile()) throw new FileLoadError(`${path}: not a regular file`);
  if (st.size > MAX_FILE_BYTES) {
    throw new FileLoadError(`${path}: ${formatBytes(st.size)} is larger than the 4 GiB this tool reads`);
  }
  try {
    const buf = readFileSync(path);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new FileLoadError(
      `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

export function readText(path: string, hint = ''): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(readBytes(path, hint));
  } catch (e) {
    if (e instanceof PeftLabError) throw e;
    throw new FileLoadError(`${path}: not valid UTF-8 text`);
  }
}

export function readJson(path: string, errorClass: ErrorClass, hint = ''): unknown {
  const text = readText(path, hint);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new errorClass(`${path}: not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

export interface ModelDir {
  /** The folder as given on the command line (used in messages). */
  dir: string;
  /** The folder's name: what PEFT records as base_model_name_or_path. */
  name: string;
  files: ModelFiles;
  /** Parsed tokenizer.json, or null when the folder has none. */
  tokenizerJson: unknown;
}

/**
 * Reads config.json, model.safetensors (or the shards model.safetensors.index.json lists) and (if
 * present) tokenizer.json; parsing is the lib's job.
 */
export function readModelDir(dir: string): ModelDir {
  checkDir(dir, 'model');
  const config = readJson(join(dir, 'config.json'), ModelConfigError, '; a model folder holds config.json');
  const indexPath = join(dir, 'model.safetensors.index.json');
  let weights: Uint8Array | Uint8Array[];
  let weightFileNames: string[];
  if (!exists(join(dir, 'model.safetensors')) && exists(indexPath)) {
    weightFileNames = shardNames(readJson(indexPath, WeightsMismatchError), indexPath);
    weights = weightFileNames.map((f) => readBytes(join(dir, f), ` (listed in ${indexPath})`));
  } else {
    weightFileNames = ['model.safetensors'];
    weights = readBytes(
      join(dir, 'model.safetensors'),
      exists(join(dir, 'pytorch_model.bin'))
        ? ' (found pytorch_model.bin: convert it to safetensors first)'
        : '; a model folder holds model.safetensors (or model.safetensors.index.json and its shards)',
    );
  }
  const tokPath = join(dir, 'tokenizer.json');
  const tokenizerJson = exists(tokPath) ? readJson(tokPath, TokenizerError) : null;
  return {
    dir,
    name: basename(resolve(dir)),
    files: { config, weights, weightFileNames, source: dir.replace(/\/+$/, '') || '/' },
    tokenizerJson,
  };
}

/** Reads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors). */
export function readAdapterDir(dir: string): AdapterFiles & { source: string } {
  checkDir(dir, 'adapter');
  const config = readText(join(dir, 'adapter_config.json'), '; an adapter folder holds adapter_config.json');
  const weights = readBytes(
    join(dir, 'adapter_model.safetensors'),
    exists(join(dir, 'adapter_model.bin'))
      ? ' (found adapter_model.bin: save the adapter with safe_serialization=True)'
      : '',
  );
  return { config, weights, source: dir.replace(/\/+$/, '') || '/' };
}

export function writeAdapterDir(dir: string, files: AdapterFiles): string[] {
  const paths = [join(dir, 'adapter_config.json'), join(dir, 'adapter_model.safetensors')];
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(paths[0]!, files.config + '\n');
    writeFileSync(paths[1]!, files.weights);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new FileLoadError(`${err.path ?? dir}: cannot write (${err.code ?? err.message})`);
  }
  return paths;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Creates the output folder up front, so a bad --out fails before training, not after. */
export function prepareOutDir(dir: string): void {
  const st = statOrNull(dir);
  if (st && !st.isDirectory()) throw new FileLoadError(`${dir}: is a file, but --out needs a folder`);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new FileLoadError(
      `${err.path ?? dir}: cannot create the output folder (${err.code ?? err.message})`,
    );
  }
}
