/**
 * `--model` may name a Hub repo (owner/name) instead of a folder: config.json, the weights
 * (model.safetensors, or model.safetensors.index.json and the shards it names) and tokenizer.json are downloaded
 * once into ~/.cache/peft-lab/hub/ and read from there afterwards, offline too. The endpoint is
 * HF_ENDPOINT when set (HuggingFace's own convention for mirrors), else huggingface.co; HF_TOKEN,
 * when set, is sent for private and gated repos (the same convention).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileLoadError } from '../lib/errors';
import { DEFAULT_HUB_ENDPOINT, checkRepoId, downloadHubModel } from '../lib/io/hub';

const GPT2_VOCAB_SIZE = 50257;
const GPT2_TOKENIZER = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../public/tokenizers/gpt2/tokenizer.json',
);

export function hubCacheDir(): string {
  return process.env.PEFT_LAB_CACHE ?? join(homedir(), '.cache', 'peft-lab', 'hub');
}

/** Returns a folder to read: `arg` itself when it exists, else the cached download of the repo it names. */
export async function resolveModelArg(arg: string): Promise<string> {
  if (existsSync(arg) || !arg.includes('/') || arg.startsWith('.') || arg.startsWith('/')) return arg;
  const repo = checkRepoId(arg);
  const dir = join(hubCacheDir(), repo.replace('/', '--'));
  // A complete download is renamed into place, so the folder's existence means all its files are there.
  if (existsSync(join(dir, 'config.json'))) return dir;
  const endpoint = process.env.HF_ENDPOINT ?? DEFAULT_HUB_ENDPOINT;
  let lastPct = -1;
  let lastFile = '';
  const token = process.env.HF_TOKEN;
  const files = await downloadHubModel(repo, {
    endpoint,
    ...(token ? { token } : {}),
    tokenAdvice: 'set HF_TOKEN to a token with read access (huggingface.co/settings/tokens)',
    onProgress: (p) => {
      const pct = p.total ? Math.floor((100 * p.loaded) / p.total) : -1;
      if (p.file !== lastFile) {
        lastFile = p.file;
        lastPct = -1;
      }
      if (p.file.endsWith('.safetensors') && pct !== lastPct && pct % 10 === 0) {
        process.stderr.write(`downloading ${repo}/${p.file}: ${pct}%\n`);
        lastPct = pct;
      }
    },
  });
  let tokenizer = files.tokenizer ? new Uint8Array(files.tokenizer) : null;
  if (!tokenizer) {
    const vocab = (JSON.parse(new TextDecoder().decode(files.config)) as { vocab_size?: number }).vocab_size;
    if (vocab !== GPT2_VOCAB_SIZE) {
      throw new FileLoadError(`${repo} has no tokenizer.json and its vocabulary (${vocab}) is not GPT-2's`);
    }
    tokenizer = readFileSync(GPT2_TOKENIZER);
  }
  // Written to a temporary folder and renamed, so an interrupted download leaves no half folder.
  // A `.partial` left by a process killed while writing is thrown away, not completed.
  const tmp = `${dir}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'config.json'), new Uint8Array(files.config));
  files.weights.forEach((w, i) => writeFileSync(join(tmp, files.weightFileNames[i]!), new Uint8Array(w)));
  if (files.index) writeFileSync(join(tmp, 'model.safetensors.index.json'), new Uint8Array(files.index));
  writeFileSync(join(tmp, 'tokenizer.json'), tokenizer);
  renameSync(tmp, dir);
  return dir;
}
