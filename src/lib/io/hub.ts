/**
 * Downloads a model folder (GPT-2 or the Llama family) from the HuggingFace Hub through its
 * `resolve` URLs (`{endpoint}/{repo}/resolve/{revision}/{file}`), with progress, checking what it
 * can before the large download: the repo exists, its config is a family PEFT Lab reads, it has
 * safetensors weights (one model.safetensors, or the shards its model.safetensors.index.json names).
 * Works against any server with the Hub's URL layout (a mirror, or the local server the tests start).
 * Every failure is a named HubError subclass, and a file comes back whole or not at all, so a caller
 * that caches only what it got back caches nothing partial.
 */
import {
  AdapterFormatError,
  FileLoadError,
  HubAccessError,
  HubConnectionError,
  HubNotFoundError,
  HubResponseError,
  HubTimeoutError,
  ModelConfigError,
} from '../errors';
import { parseModelConfig } from '../model/family';
import { shardNames } from '../model/shards';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

export interface HubProgress {
  file: string;
  loaded: number;
  /** 0 when the server sends no Content-Length. */
  total: number;
}

/**
 * How long the server may send nothing (before its answer, or between two pieces of a file) before
 * the download is given up. huggingface_hub waits 10 s; browsers on slow links get more room.
 */
export const DEFAULT_HUB_TIMEOUT_MS = 30_000;

export interface HubOptions {
  endpoint?: string;
  revision?: string;
  onProgress?: (p: HubProgress) => void;
  fetch?: typeof fetch;
  /** A Hub access token (sent as `Authorization: Bearer`), for private and gated repos. */
  token?: string;
  /** How to give a token where this runs, for the message on a gated or private repo. */
  tokenAdvice?: string;
  /** Milliseconds without a byte before giving up; default DEFAULT_HUB_TIMEOUT_MS. */
  timeoutMs?: number;
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

/** The message's tail for a gated or private repo when the caller says nothing of its own. */
const DEFAULT_TOKEN_ADVICE = 'give a Hub token with read access (huggingface.co/settings/tokens)';

/** Sizes in messages: bytes under 1 MiB (what a cut-off small file shows), MiB above. */
function sizeText(bytes: number): string {
  return bytes < 1024 * 1024 ? `${bytes} bytes` : `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** One file of a repo, for messages: `owner/name/file`. */
interface Wanted {
  repo: string;
  file: string;
  url: string;
}

/** 401/403/404/other statuses as named errors; `optional` files answer 404 with null instead. */
function statusError(res: Response, w: Wanted, opts: HubOptions): Error {
  const what = `${w.repo}/${w.file}`;
  const page = `${endpointOf(opts)}/${w.repo}`;
  const advice = opts.tokenAdvice ?? DEFAULT_TOKEN_ADVICE;
  // The Hub says why in X-Error-Code (huggingface_hub reads the same header): an unauthenticated
  // request for a repo that does not exist gets 401 "RepoNotFound", a gated one 401/403 "GatedRepo".
  const code = res.headers.get('x-error-code') ?? '';
  if (
    res.status === 404 ||
    code === 'RepoNotFound' ||
    code === 'EntryNotFound' ||
    code === 'RevisionNotFound'
  ) {
    const priv = opts.token ? '' : `; a private repo also answers so without a token: ${advice}`;
    return new HubNotFoundError(
      `${what} was not found on the Hub (HTTP ${res.status}): check the repo id and the revision${priv}`,
    );
  }
  if (code === 'GatedRepo' || (res.status === 403 && !code)) {
    const then = opts.token
      ? "then try again with the same token (a licence that needs the authors' approval may take a while)"
      : `then ${advice}`;
    return new HubAccessError(
      `${what}: the Hub refused access (HTTP ${res.status}); the repo is gated: accept its licence at ${page} while logged in, ${then}`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    return new HubAccessError(
      opts.token
        ? `${what}: the Hub refused the token (HTTP ${res.status}): check that it is valid and can read ${w.repo}`
        : `${what}: the Hub refused access (HTTP ${res.status}); the repo may be private or gated: if you can open ${page}, accept its licence there, then ${advice}`,
    );
  }
  return new HubResponseError(
    `${what}: the Hub answered HTTP ${res.status}${res.status >= 500 ? ' (a server fault)' : ''}; try again later`,
  );
}

/**
 * One file of a repo, whole or not at all: a named error when the server cannot be reached, refuses,
 * stalls for longer than the timeout, breaks off, or sends something that is not the file (a web
 * page, fewer bytes than it announced). `optional` files that are absent (404) give null.
 */
async function fetchFile(w: Wanted, opts: HubOptions, optional = false): Promise<ArrayBuffer | null> {
  const f = opts.fetch ?? fetch;
  const what = `${w.repo}/${w.file}`;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HUB_TIMEOUT_MS;
  // The timeout counts from the request and then from each piece of the body, so a large file on a
  // slow but moving connection is never cut, and a server that stops sending is.
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => abort.abort(), timeoutMs);
  };
  const stalled = (loaded: number): HubTimeoutError =>
    new HubTimeoutError(
      `${what}: the server sent nothing for ${timeoutMs / 1000} s${loaded ? ` after ${sizeText(loaded)}` : ''}: it is stalled or very slow; try again later, or use a mirror; nothing of it was kept`,
    );
  arm();
  try {
    let res: Response;
    try {
      res = await f(w.url, {
        signal: abort.signal,
        ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}),
      });
    } catch {
      if (abort.signal.aborted) throw stalled(0);
      throw new HubConnectionError(
        `could not reach ${endpointOf(opts)} for ${what}: check your network connection (models downloaded before still work offline)`,
      );
    }
    if (!res.ok) {
      void res.body?.cancel().catch(() => undefined);
      if (res.status === 404 && optional) return null;
      throw statusError(res, w, opts);
    }
    // A login page, a proxy's or captive portal's page, or an endpoint that is not a Hub answers 200
    // with HTML: never a file of a model repo.
    if (/^\s*text\/html/i.test(res.headers.get('content-type') ?? '')) {
      void res.body?.cancel().catch(() => undefined);
      throw notTheFile(w, opts);
    }
    const bytes = await readBody(res, w, opts, arm, stalled, abort.signal);
    checkWhole(bytes, res, w, opts);
    return bytes;
  } finally {
    clearTimeout(timer);
  }
}

function notTheFile(w: Wanted, opts: HubOptions): HubResponseError {
  return new HubResponseError(
    `${w.repo}/${w.file}: ${endpointOf(opts)} sent a web page (HTML) instead of the file: it is not a Hub, or a login page or proxy stands in the way; check the address and your network`,
  );
}

async function readBody(
  res: Response,
  w: Wanted,
  opts: HubOptions,
  arm: () => void,
  stalled: (loaded: number) => HubTimeoutError,
  signal: AbortSignal,
): Promise<ArrayBuffer> {
  const total = Number(res.headers.get('content-length') ?? 0);
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  const broken = (): Error =>
    signal.aborted
      ? stalled(loaded)
      : new HubConnectionError(
          `${w.repo}/${w.file}: the connection broke after ${sizeText(loaded)}${total ? ` of ${sizeText(total)}` : ''}: try again; nothing of it was kept`,
        );
  opts.onProgress?.({ file: w.file, loaded, total });
  if (!res.body) {
    try {
      const all = await res.arrayBuffer();
      opts.onProgress?.({ file: w.file, loaded: all.byteLength, total });
      return all;
    } catch {
      throw broken();
    }
  }
  const reader = res.body.getReader();
  for (;;) {
    let part: ReadableStreamReadResult<Uint8Array>;
    try {
      part = await reader.read();
    } catch {
      throw broken();
    }
    if (part.done) break;
    arm();
    chunks.push(part.value);
    loaded += part.value.byteLength;
    opts.onProgress?.({ file: w.file, loaded, total });
  }
  const out = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out.buffer;
}

/**
 * What can be told from the bytes alone: a JSON file that is a web page, a body shorter than its
 * Content-Length, a safetensors file shorter than its own header says. (Longer safetensors and
 * JSON that does not parse are the parsers' to refuse.)
 */
function checkWhole(bytes: ArrayBuffer, res: Response, w: Wanted, opts: HubOptions): void {
  const what = `${w.repo}/${w.file}`;
  const cut = (got: number, want: number, by: string): HubResponseError =>
    new HubResponseError(
      `${what} arrived cut short: ${sizeText(got)} of ${sizeText(want)} (${by}): try again; nothing of it was kept`,
    );
  if (w.file.endsWith('.json')) {
    const head = new TextDecoder().decode(new Uint8Array(bytes, 0, Math.min(bytes.byteLength, 64)));
    if (/^\s*</.test(head)) throw notTheFile(w, opts);
    return;
  }
  // A compressed body's Content-Length counts compressed bytes, so it says nothing about the file.
  const encoding = res.headers.get('content-encoding');
  const total = Number(res.headers.get('content-length') ?? 0);
  if (total > 0 && (!encoding || encoding === 'identity') && bytes.byteLength < total) {
    throw cut(bytes.byteLength, total, 'the length the server announced');
  }
  if (w.file.endsWith('.safetensors')) {
    const want = safetensorsLength(bytes);
    if (want !== null && bytes.byteLength < want)
      throw cut(bytes.byteLength, want, 'the length its header gives');
  }
}

/**
 * The length a safetensors file's header implies (8 + header + the last tensor's end), or null when
 * the header cannot be read (the safetensors parser then says what is wrong with it).
 */
function safetensorsLength(bytes: ArrayBuffer): number | null {
  if (bytes.byteLength < 8) return 8;
  const view = new DataView(bytes);
  const n = Number(view.getBigUint64(0, true));
  // Over safetensors' own 100 MB header limit: not a cut file but a broken one, for the parser.
  if (n > 100_000_000) return null;
  if (n > bytes.byteLength - 8) return 8 + n;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(new Uint8Array(bytes, 8, n)));
  } catch {
    return null;
  }
  if (typeof header !== 'object' || header === null) return null;
  let end = 0;
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const off = (v as { data_offsets?: unknown }).data_offsets;
    if (!Array.isArray(off) || typeof off[1] !== 'number' || !Number.isSafeInteger(off[1])) return null;
    end = Math.max(end, off[1]);
  }
  return 8 + n + end;
}

function endpointOf(opts: HubOptions): string {
  return (opts.endpoint ?? DEFAULT_HUB_ENDPOINT).replace(/\/$/, '');
}

function resolveBase(repo: string, opts: HubOptions): string {
  return `${endpointOf(opts)}/${repo}/resolve/${encodeURIComponent(opts.revision ?? 'main')}`;
}

export async function downloadHubModel(repoId: string, opts: HubOptions = {}): Promise<HubFiles> {
  const repo = checkRepoId(repoId);
  const base = resolveBase(repo, opts);
  const file = (name: string, optional = false): Promise<ArrayBuffer | null> =>
    fetchFile({ repo, file: name, url: `${base}/${name}` }, opts, optional);
  const config = (await file('config.json'))!;
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
  const single = await file('model.safetensors', true);
  if (single) {
    weights = [single];
    weightFileNames = ['model.safetensors'];
  } else {
    // Larger checkpoints are sharded: the index maps each tensor to its shard file.
    const indexName = 'model.safetensors.index.json';
    index = await file(indexName, true);
    if (!index) {
      throw new FileLoadError(
        `${repo} has no model.safetensors (nor ${indexName}); PEFT Lab reads safetensors weights only (not pytorch_model.bin)`,
      );
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(index));
    } catch {
      throw new FileLoadError(`${repo}/${indexName} is not valid JSON`);
    }
    weightFileNames = shardNames(parsed, `${repo}/${indexName}`);
    weights = [];
    for (const name of weightFileNames) weights.push((await file(name))!);
  }
  const tokenizer = await file('tokenizer.json', true);
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
  const file = (name: string): Promise<ArrayBuffer | null> =>
    fetchFile({ repo, file: name, url: `${base}/${name}` }, opts, true);
  const configBytes = await file('adapter_config.json');
  if (!configBytes) {
    throw new FileLoadError(
      `${repo} has no adapter_config.json, so it is not a PEFT adapter repo; a base model loads on the Models screen`,
    );
  }
  const config = new TextDecoder().decode(configBytes);
  const weights = await file('adapter_model.safetensors');
  if (!weights) throw new AdapterFormatError(`${repo} has no adapter_model.safetensors. ${BIN_ADVICE}`);
  return { config, weights };
}

/** What to do with a pickled adapter_model.bin: PEFT Lab reads safetensors only. */
export const BIN_ADVICE =
  'PEFT Lab reads adapter_model.safetensors only, not adapter_model.bin (a pickle, which can run code when loaded): ' +
  'convert it in Python with model.save_pretrained(dir, safe_serialization=True) on the PeftModel, or ' +
  'safetensors.torch.save_file(torch.load("adapter_model.bin"), "adapter_model.safetensors")';
