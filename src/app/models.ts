/**
 * What the Models screen shows of a model without loading it: size, parameters and tokenizer read
 * from config.json and tokenizer.json, the model card rendered from README.md, and the names of
 * local models kept in this browser. No tensors here: the engine loads models, this only reads files.
 */
import { FileLoadError, StorageError } from '../lib/errors';
import { Marked, type Tokens } from 'marked';
import { countParameters, describeArchitecture, modelFamily, parseModelConfig } from '../lib/model/family';
import type { ModelFamily } from '../lib/model/family';
import { SHARD_INDEX, folderWeights } from '../lib/model/shards';
import type { ModelFileBytes } from '../lib/protocol/lab-protocol';
import { getModelFile } from '../lib/storage/models';

/** The three files of a single-file model folder, in the order the engine's loadModelFiles takes them. */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'] as const;
/** Stored local models' ids start with this (Hub models' with "hub: "). */
export const LOCAL_PREFIX = 'local: ';

export interface ModelDetails {
  family: ModelFamily;
  /** e.g. "Llama (LlamaForCausalLM), 2 layers, 4 heads / 2 key-value heads, RoPE theta 10,000". */
  architecture: string;
  params: number;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  vocabSize: number;
  nPositions: number;
  /** One line, e.g. "byte-level BPE, 2,048 tokens". */
  tokenizer: string;
}

/**
 * The files of a model folder not among `names`: config.json, tokenizer.json, and the weights as
 * model.safetensors or a sharded checkpoint's index (whose shards readModelFolder checks).
 */
export function missingModelFiles(names: readonly string[]): string[] {
  return MODEL_FILES.filter(
    (f) => !names.includes(f) && !(f === 'model.safetensors' && names.includes(SHARD_INDEX)),
  );
}

/** What a person picked or dropped, read: the engine's request, and every file read, by name (to keep). */
export interface ReadFolder {
  bytes: ModelFileBytes;
  files: Record<string, ArrayBuffer>;
}

/**
 * A picked or dropped model folder read by file name: config.json, tokenizer.json and either
 * model.safetensors or model.safetensors.index.json with every shard it names (other files are not
 * read). What is missing is named with what to pick.
 */
export async function readModelFolder(picked: readonly File[], source: string): Promise<ReadFolder> {
  const byName = new Map(picked.map((f) => [f.name, f]));
  const missing = missingModelFiles([...byName.keys()]);
  if (missing.length > 0) {
    throw new FileLoadError(
      `the chosen files lack ${missing.join(' and ')}: pick a model folder's config.json, tokenizer.json and model.safetensors (or model.safetensors.index.json with its shards) together`,
    );
  }
  const files: Record<string, ArrayBuffer> = {};
  const read = async (name: string): Promise<void> => {
    const f = byName.get(name);
    if (f) files[name] = await f.arrayBuffer();
  };
  await Promise.all(['config.json', 'tokenizer.json', 'model.safetensors', SHARD_INDEX].map(read));
  if (!files['model.safetensors']) {
    // The shards the index names (folderWeights names any that were not picked).
    const names = [...byName.keys()].filter((n) => /^[\w.-]+\.safetensors$/.test(n));
    await Promise.all(names.map(read));
  }
  const weights = folderWeights(files, source);
  // Kept: what the model needs and nothing else that was picked beside it.
  const keep = ['config.json', 'tokenizer.json', ...weights.weightFileNames];
  if (weights.weightFileNames[0] !== 'model.safetensors') keep.push(SHARD_INDEX);
  return {
    bytes: { config: files['config.json']!, tokenizer: files['tokenizer.json']!, ...weights },
    files: Object.fromEntries(keep.map((n) => [n, files[n]!])),
  };
}

/** A kept folder (IndexedDB record) as the engine's request; null when a file is lost. */
export function keptModelBytes(files: Record<string, ArrayBuffer>, id: string): ModelFileBytes | null {
  const config = files['config.json'];
  const tokenizer = files['tokenizer.json'];
  if (!config || !tokenizer) return null;
  try {
    return { config, tokenizer, ...folderWeights(files, id) };
  } catch {
    return null;
  }
}

/** `local: <name>`, with " (2)", " (3)"... when that id is taken. */
export function localModelId(name: string, taken: readonly string[]): string {
  const base = `${LOCAL_PREFIX}${name.trim() || 'model'}`;
  if (!taken.includes(base)) return base;
  for (let i = 2; ; i++) {
    const id = `${base} (${i})`;
    if (!taken.includes(id)) return id;
  }
}

/** A tokenizer.json's kind and size in one line. */
export function describeTokenizer(json: unknown): string {
  const t = (json ?? {}) as {
    model?: { type?: unknown; vocab?: unknown };
    pre_tokenizer?: { type?: unknown } | null;
    added_tokens?: unknown;
  };
  const type = typeof t.model?.type === 'string' ? t.model.type : 'unknown model';
  const vocab = t.model?.vocab;
  const size =
    vocab && typeof vocab === 'object'
      ? Array.isArray(vocab)
        ? vocab.length
        : Object.keys(vocab).length
      : undefined;
  const byteLevel = t.pre_tokenizer?.type === 'ByteLevel' ? 'byte-level ' : '';
  const added = Array.isArray(t.added_tokens) ? t.added_tokens.length : 0;
  return (
    `${byteLevel}${type}` +
    (size !== undefined ? `, ${size.toLocaleString('en')} tokens` : '') +
    (added > 0 ? ` (${added} special)` : '')
  );
}

const decoder = new TextDecoder();

function json(bytes: ArrayBuffer, file: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new FileLoadError(`${file} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/** Parameters, shape and tokenizer from a folder's config.json and tokenizer.json bytes. */
export function modelDetails(config: ArrayBuffer, tokenizer: ArrayBuffer): ModelDetails {
  const c = parseModelConfig(json(config, 'config.json'));
  return {
    family: modelFamily(c),
    architecture: describeArchitecture(c),
    params: countParameters(c),
    nLayer: c.nLayer,
    nEmbd: c.nEmbd,
    nHead: c.nHead,
    vocabSize: c.vocabSize,
    nPositions: c.nPositions,
    tokenizer: describeTokenizer(json(tokenizer, 'tokenizer.json')),
  };
}

/** Details of a model kept in IndexedDB (Hub or local), read from its stored files. */
export async function storedModelDetails(id: string): Promise<ModelDetails> {
  const [config, tokenizer] = await Promise.all([
    getModelFile(id, 'config.json'),
    getModelFile(id, 'tokenizer.json'),
  ]);
  if (!config || !tokenizer) {
    throw new StorageError(
      `${id} has lost ${config ? 'tokenizer.json' : 'config.json'}: delete it and load it again`,
    );
  }
  return modelDetails(config, tokenizer);
}

/** Details of a bundled model from its folder URL; `bytes` is model.safetensors' size when the server says. */
export async function folderModelDetails(
  folderUrl: string,
  fetchFn: typeof fetch = fetch,
): Promise<ModelDetails & { bytes: number | null }> {
  const get = async (file: string): Promise<ArrayBuffer> => {
    const res = await fetchFn(`${folderUrl}${file}`);
    if (!res.ok) throw new FileLoadError(`could not read ${folderUrl}${file}: HTTP ${res.status}`);
    return res.arrayBuffer();
  };
  const [config, tokenizer, head] = await Promise.all([
    get('config.json'),
    get('tokenizer.json'),
    fetchFn(`${folderUrl}model.safetensors`, { method: 'HEAD' }).catch(() => null),
  ]);
  const length = head?.ok ? Number(head.headers.get('content-length')) : NaN;
  return { ...modelDetails(config, tokenizer), bytes: Number.isFinite(length) && length > 0 ? length : null };
}

// ---------------------------------------------------------------------------------------------
// Model cards

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/**
 * A link or image target made absolute against the model's folder, or null when it is not http(s)
 * (javascript:, data:, vbscript: and the like are dropped, not rendered).
 */
export function resolveCardUrl(href: string, folderUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(href, folderUrl);
  } catch {
    return null;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

/**
 * A model card (README.md) as HTML that is safe to insert. Cards from the Hub are untrusted, so:
 * - raw HTML in the markdown (blocks and inline tags alike) is escaped and shows as text, never
 *   parsed: marked's `html` renderer is replaced by one that returns the escaped source;
 * - every text, title and URL that reaches an attribute is escaped (marked escapes text itself);
 * - links and images keep only http(s) targets, resolved against the model's folder so a card's
 *   relative `![loss curve](loss-curve.svg)` shows the folder's image; other schemes render as
 *   plain text (links) or their alt text (images).
 * The YAML front matter the Hub puts on cards is dropped.
 */
export function renderModelCard(markdown: string, folderUrl: string): string {
  const md = new Marked({
    gfm: true,
    async: false,
    renderer: {
      html({ text }: Tokens.HTML | Tokens.Tag): string {
        return escapeHtml(text);
      },
      link({ href, title, tokens }: Tokens.Link): string {
        const text = this.parser.parseInline(tokens);
        const url = resolveCardUrl(href, folderUrl);
        if (url === null) return text;
        const t = title ? ` title="${escapeHtml(title)}"` : '';
        return `<a href="${escapeHtml(url)}"${t} target="_blank" rel="noopener noreferrer">${text}</a>`;
      },
      image({ href, title, text }: Tokens.Image): string {
        const url = resolveCardUrl(href, folderUrl);
        if (url === null) return escapeHtml(text);
        const t = title ? ` title="${escapeHtml(title)}"` : '';
        return `<img src="${escapeHtml(url)}" alt="${escapeHtml(text)}"${t} loading="lazy">`;
      },
    },
  });
  const body = markdown.replace(/^---\r?\n[\s\S]*?\r?\n---\r?\n/, '');
  return md.parse(body) as string;
}

/** Fetches `<folderUrl>README.md` and renders it (see renderModelCard). */
export async function loadModelCard(folderUrl: string, fetchFn: typeof fetch = fetch): Promise<string> {
  const res = await fetchFn(`${folderUrl}README.md`);
  if (!res.ok) throw new FileLoadError(`this model has no card (${folderUrl}README.md: HTTP ${res.status})`);
  return renderModelCard(await res.text(), folderUrl);
}
