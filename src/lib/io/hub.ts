/**
 * Downloads a model folder (GPT-2 or the Llama family) from the HuggingFace Hub through its
 * `resolve` URLs (`{endpoint}/{repo}/resolve/{revision}/{file}`), with progress, checking what it
 * can before the large download: the repo exists, its config is a family PEFT Lab reads, it has
 * safetensors weights (one model.safetensors, or the shards its model.safetensors.index.json names).
 * Works against any server with the Hub's URL layout (a mirror, or the local server the tests start).
 */
import { AdapterFormatError, FileLoadError, ModelConfigError } from '../errors';
import { parseModelConfig } from '../model/family';
import { shardNames } from '../model/shards';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export interface HubProgress {
  file: string;
  loaded: number;
  /** 0 when the server sends no Content-Length. */
  total: number;
}

export interface HubOptions {
  endpoint?: string;
  revision?: string;
  onProgress?: (p: HubProgress) => void;
  fetch?: typeof fetch;
}

export interface HubFiles {
  config: ArrayBuffer;
  /** model.safetensors alone, or every shard the index names, in `weightFileNames`' order. */
  weights: ArrayBuffer[];
  /** ["model.safetensors"], or the shard file names. */
  weightFileNames: string[];
  /** model.safetensors.index.json when the weights are sharded, else null. */
  index: ArrayBuffer | null;
  /** null when the repo has no tokenizer.json (the caller may use GPT-2's own vocabulary). */
  tokenizer: ArrayBuffer | null;
}

/** Hub repo ids: `name` or `owner/name`, letters, digits, `-`, `_`, `.`. */
const REPO_ID = /^(?:[A-Za-z0-9][\w.-]{0,95}\/)?[A-Za-z0-9][\w.-]{0,95}$/;

export function checkRepoId(repoId: string): string {
  const id = repoId.trim();
  if (!REPO_ID.test(id) || id.includes('..')) {
    throw new FileLoadError(
      `"${repoId}" is not a Hub repo id: use the form owner/name, e.g. openai-community/gpt2`,
    );
  }
  return id;
}

async function get(url: string, what: string, opts: HubOptions, optional = false): Promise<Response | null> {
  const f = opts.fetch ?? fetch;
  let res: Response;
  try {
    res = await f(url);
  } catch {
    throw new FileLoadError(
      `could not reach ${opts.endpoint ?? DEFAULT_HUB_ENDPOINT} for ${what}: check your network connection (models downloaded before still work offline)`,
    );
  }
  if (res.status === 404 && optional) return null;
  if (res.status === 401 || res.status === 403) {
    throw new FileLoadError(
      `${what}: the Hub refused access (HTTP ${res.status}); the repo may be private or gated`,
    );
  }
  if (res.status === 404) throw new FileLoadError(`${what} was not found on the Hub (HTTP 404)`);
  if (!res.ok) throw new FileLoadError(`${what}: the Hub answered HTTP ${res.status}; try again later`);
  return res;
}

async function readWithProgress(res: Response, file: string, opts: HubOptions): Promise<ArrayBuffer> {
  const total = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) return res.arrayBuffer();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  opts.onProgress?.({ file, loaded, total });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.byteLength;
    opts.onProgress?.({ file, loaded, total });
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out.buffer;
}

function resolveBase(repo: string, opts: HubOptions): string {
  return `${(opts.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/$/, '')}/${repo}/resolve/${encodeURIComponent(opts.revision ?? 'main')}`;
}

export async function downloadHubModel(repoId: string, opts: HubOptions = {}): Promise<HubFiles> {
  const repo = checkRepoId(repoId);
  const base = resolveBase(repo, opts);
  const configRes = await get(`${base}/config.json`, `${repo}/config.json`, opts);
  const config = await readWithProgress(configRes!, 'config.json', opts);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(config));
  } catch {
    throw new ModelConfigError(`${repo}/config.json is not valid JSON`);
  }
  // Refuse other architectures (and configs missing what the model needs) before the large download.
  parseModelConfig(json, `${repo}/config.json`);
  let weights: ArrayBuffer[];
  let weightFileNames: string[];
  let index: ArrayBuffer | null = null;
  const single = await get(`${base}/model.safetensors`, `${repo}/model.safetensors`, opts, true);
  if (single) {
    weights = [await readWithProgress(single, 'model.safetensors', opts)];
    weightFileNames = ['model.safetensors'];
  } else {
    // Larger checkpoints are sharded: the index maps each tensor to its shard file.
    const indexName = 'model.safetensors.index.json';
    const indexRes = await get(`${base}/${indexName}`, `${repo}/${indexName}`, opts, true);
    if (!indexRes) {
      throw new FileLoadError(
        `${repo} has no model.safetensors (nor ${indexName}); PEFT Lab reads safetensors weights only (not pytorch_model.bin)`,
      );
    }
    index = await readWithProgress(indexRes, indexName, opts);
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(index));
    } catch {
      throw new FileLoadError(`${repo}/${indexName} is not valid JSON`);
    }
    weightFileNames = shardNames(parsed, `${repo}/${indexName}`);
    weights = [];
    for (const name of weightFileNames) {
      const res = await get(`${base}/${name}`, `${repo}/${name}`, opts);
      weights.push(await readWithProgress(res!, name, opts));
    }
  }
  const tokRes = await get(`${base}/tokenizer.json`, `${repo}/tokenizer.json`, opts, true);
  const tokenizer = tokRes ? await readWithProgress(tokRes, 'tokenizer.json', opts) : null;
  return { config, weights, weightFileNames, index, tokenizer };
}

/** A PEFT adapter repo's two files, as save_pretrained / push_to_hub write them. */
export interface HubAdapterFiles {
  /** adapter_config.json text. */
  config: string;
  /** adapter_model.safetensors bytes. */
  weights: ArrayBuffer;
}

/**
 * Downloads a PEFT adapter repo: adapter_config.json first (a repo without one is not an adapter),
 * then adapter_model.safetensors. A repo with only adapter_model.bin is refused with how to convert it.
 */
export async function downloadHubAdapter(repoId: string, opts: HubOptions = {}): Promise<HubAdapterFiles> {
  const repo = checkRepoId(repoId);
  const base = resolveBase(repo, opts);
  const configRes = await get(`${base}/adapter_config.json`, `${repo}/adapter_config.json`, opts, true);
  if (!configRes) {
    throw new FileLoadError(
      `${repo} has no adapter_config.json, so it is not a PEFT adapter repo; a base model loads on the Models screen`,
    );
  }
  const config = new TextDecoder().decode(await readWithProgress(configRes, 'adapter_config.json', opts));
  const weightsRes = await get(
    `${base}/adapter_model.safetensors`,
    `${repo}/adapter_model.safetensors`,
    opts,
    true,
  );
  if (!weightsRes) throw new AdapterFormatError(`${repo} has no adapter_model.safetensors. ${BIN_ADVICE}`);
  return { config, weights: await readWithProgress(weightsRes, 'adapter_model.safetensors', opts) };
}

/** What to do with a pickled adapter_model.bin: PEFT Lab reads safetensors only. */
export const BIN_ADVICE =
  'PEFT Lab reads adapter_model.safetensors only, not adapter_model.bin (a pickle, which can run code when loaded): ' +
  'convert it in Python with model.save_pretrained(dir, safe_serialization=True) on the PeftModel, or ' +
  'safetensors.torch.save_file(torch.load("adapter_model.bin"), "adapter_model.safetensors")';
