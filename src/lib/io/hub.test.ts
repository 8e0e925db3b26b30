/**
 * The Hub download path against a real local HTTP server that serves the Hub's URL layout
 * (`/{owner}/{name}/resolve/main/{file}`) from the bundled model folder: no function of ours is mocked.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkRepoId, downloadHubModel } from './hub';
import type { HubProgress } from './hub';
import { FileLoadError, ModelConfigError } from '../errors';

const MODEL = join(process.cwd(), 'public/models/peftlab-s');
const SHARDED = join(process.cwd(), 'src/lib/model/fixtures/tiny-qwen2-sharded');
const REPOS: Record<string, Record<string, Buffer>> = {
  'peftlab/peftlab-s': {
    'config.json': readFileSync(join(MODEL, 'config.json')),
    'model.safetensors': readFileSync(join(MODEL, 'model.safetensors')),
    'tokenizer.json': readFileSync(join(MODEL, 'tokenizer.json')),
  },
  'peftlab/no-tokenizer': {
    'config.json': readFileSync(join(MODEL, 'config.json')),
    'model.safetensors': readFileSync(join(MODEL, 'model.safetensors')),
  },
  'google-bert/bert-tiny': {
    'config.json': Buffer.from('{"model_type": "bert", "architectures": ["BertForMaskedLM"]}'),
  },
  'Qwen/Qwen2.5-0.5B': Object.fromEntries(
    readdirSync(SHARDED)
      .filter((f) => f !== 'expected.json')
      .map((f) => [f, readFileSync(join(SHARDED, f))]),
  ),
  'old/bin-only': { 'config.json': readFileSync(join(MODEL, 'config.json')) },
  'secret/gated': {},
};

let server: Server;
let endpoint = '';
const requested: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    requested.push(req.url ?? '');
    const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
    if (m?.[1] === 'secret/gated') {
      res.writeHead(401).end();
      return;
    }
    const body = m ? REPOS[m[1]!]?.[m[2]!] : undefined;
    if (!body) {
      res.writeHead(404).end('Entry not found');
      return;
    }
    // No keep-alive: each test's requests stand alone.
    res.writeHead(200, { 'content-length': body.byteLength, connection: 'close' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('Hub download', () => {
  it('downloads the three files with progress', async () => {
    const progress: HubProgress[] = [];
    const files = await downloadHubModel('peftlab/peftlab-s', {
      endpoint,
      onProgress: (p) => progress.push(p),
    });
    // Buffer.compare: an element-wise toEqual over 2 MB takes seconds.
    expect(
      Buffer.compare(Buffer.from(files.weights[0]!), REPOS['peftlab/peftlab-s']!['model.safetensors']!),
    ).toBe(0);
    expect(files.tokenizer?.byteLength).toBe(REPOS['peftlab/peftlab-s']!['tokenizer.json']!.byteLength);
    const last = progress.filter((p) => p.file === 'model.safetensors').at(-1)!;
    expect(last.loaded).toBe(last.total);
    expect(last.total).toBe(files.weights[0]!.byteLength);
    expect(files.weightFileNames).toEqual(['model.safetensors']);
    expect(files.index).toBeNull();
  });

  it('returns no tokenizer when the repo has none', async () => {
    expect((await downloadHubModel('peftlab/no-tokenizer', { endpoint })).tokenizer === null).toBe(true);
  });

  it('refuses another architecture before downloading weights', async () => {
    requested.length = 0;
    const bert = downloadHubModel('google-bert/bert-tiny', { endpoint });
    await expect(bert).rejects.toThrow(ModelConfigError);
    await expect(bert).rejects.toThrow(/model_type "bert".*is not supported/);
    expect(requested.some((u) => u.endsWith('.safetensors'))).toBe(false);
  });

  it('downloads a sharded repo: the index, then each shard it names, in its order', async () => {
    requested.length = 0;
    const files = await downloadHubModel('Qwen/Qwen2.5-0.5B', { endpoint });
    const repo = REPOS['Qwen/Qwen2.5-0.5B']!;
    const index = JSON.parse(repo['model.safetensors.index.json']!.toString()) as {
      weight_map: Record<string, string>;
    };
    const shards = [...new Set(Object.values(index.weight_map))];
    expect(shards.length).toBe(4);
    expect(files.weightFileNames).toEqual(shards);
    files.weights.forEach((w, i) => expect(Buffer.compare(Buffer.from(w), repo[shards[i]!]!)).toBe(0));
    expect(Buffer.compare(Buffer.from(files.index!), repo['model.safetensors.index.json']!)).toBe(0);
    // model.safetensors is asked first (it is absent), then the index and the shards.
    expect(requested.filter((u) => u.endsWith('safetensors') || u.endsWith('.json'))).toEqual([
      '/Qwen/Qwen2.5-0.5B/resolve/main/config.json',
      '/Qwen/Qwen2.5-0.5B/resolve/main/model.safetensors',
      '/Qwen/Qwen2.5-0.5B/resolve/main/model.safetensors.index.json',
      ...shards.map((f) => `/Qwen/Qwen2.5-0.5B/resolve/main/${f}`),
      '/Qwen/Qwen2.5-0.5B/resolve/main/tokenizer.json',
    ]);
  });

  it('names a missing repo, missing safetensors, a gated repo, no network and a bad id', async () => {
    await expect(downloadHubModel('nobody/nothing', { endpoint })).rejects.toThrow(
      /nobody\/nothing\/config.json was not found/,
    );
    await expect(downloadHubModel('old/bin-only', { endpoint })).rejects.toThrow(
      /has no model.safetensors \(nor model.safetensors.index.json\)/,
    );
    await expect(downloadHubModel('secret/gated', { endpoint })).rejects.toThrow(/private or gated/);
    await expect(downloadHubModel('a/b', { endpoint: 'http://127.0.0.1:9' })).rejects.toThrow(
      /could not reach/,
    );
    expect(() => checkRepoId('../../etc/passwd')).toThrow(FileLoadError);
    expect(() => checkRepoId('openai-community/gpt2')).not.toThrow();
    expect(() => checkRepoId('gpt2')).not.toThrow();
  });
});
