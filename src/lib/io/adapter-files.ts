/**
 * Which of the files a person picked or dropped make a PEFT adapter, and which base model its
 * config names. tfjs-free: the UI runs it before anything is sent to the engine, so a wrong choice
 * is named at once and the worker sees only the two files it reads.
 */
import { AdapterFormatError } from '../errors';
import { BIN_ADVICE } from './hub';

/** What the helpers need of a File (tests pass plain objects). */
export interface PickedFile {
  name: string;
  /** A folder pick (webkitdirectory) gives "folder/file"; empty for files picked one by one. */
  webkitRelativePath?: string;
}

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
const ADAPTER_BIN_FILE = 'adapter_model.bin';

/**
 * The config and the safetensors weights among `files` (a folder's other files, such as PEFT's
 * README.md, are ignored), and the folder's name when a folder was picked.
 */
export function pickAdapterFiles<F extends PickedFile>(
  files: readonly F[],
): { config: F; weights: F; folder: string | null } {
  // A folder with sub-folders (several adapters saved together) keeps only its top level's files.
  const depth = (f: F): number => (f.webkitRelativePath || f.name).split('/').length;
  const top = Math.min(...files.map(depth));
  const named = (n: string): F | undefined => files.find((f) => f.name === n && depth(f) === top);
  const config = named(ADAPTER_CONFIG_FILE);
  const weights = named(ADAPTER_WEIGHTS_FILE);
  if (!weights && files.some((f) => f.name.endsWith('.bin'))) {
    throw new AdapterFormatError(
      `the chosen files hold ${ADAPTER_BIN_FILE} and no ${ADAPTER_WEIGHTS_FILE}. ${BIN_ADVICE}`,
    );
  }
  const missing = [config ? null : ADAPTER_CONFIG_FILE, weights ? null : ADAPTER_WEIGHTS_FILE].filter(
    (n): n is string => n !== null,
  );
  if (missing.length || !config || !weights) {
    throw new AdapterFormatError(
      `the chosen files lack ${missing.join(' and ')}: pick a PEFT adapter folder (save_pretrained's output), or its ${ADAPTER_CONFIG_FILE} and ${ADAPTER_WEIGHTS_FILE} together`,
    );
  }
  const folder = (config.webkitRelativePath || '').split('/').slice(-2, -1)[0] || null;
  return { config, weights, folder };
}

/**
 * base_model_name_or_path from adapter_config.json text, reduced to what can match a model here:
 * a bundled id ("peftlab-s", or a path ending in it) or a Hub repo id. null when absent or not JSON
 * (the engine names a broken config when it opens it).
 */
export function baseModelOf(configText: string): string | null {
  let json: unknown;
  try {
    json = JSON.parse(configText);
  } catch {
    return null;
  }
  if (typeof json !== 'object' || json === null) return null;
  const v = (json as Record<string, unknown>).base_model_name_or_path;
  return typeof v === 'string' && v.trim() ? v.trim() : null;
}

/**
 * The model to open an adapter on, given its base_model_name_or_path: a bundled model whose id is the
 * name or its last path part ("./models/peftlab-s"), or a Hub model kept in this browser ("hub: owner/name").
 * null: none here matches, so the caller suggests the name and tries the loaded model.
 */
export function matchBaseModel(
  baseName: string | null,
  bundled: readonly string[],
  cached: readonly string[],
): string | null {
  if (!baseName) return null;
  const clean = baseName.replace(/\/+$/, '');
  const last = clean.split('/').at(-1) ?? clean;
  const hit = bundled.find((id) => id === clean || id === last);
  if (hit) return hit;
  return cached.find((id) => id === `hub: ${clean}`) ?? null;
}
