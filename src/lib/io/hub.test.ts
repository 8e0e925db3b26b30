/**
 * The Hub download path against a real local HTTP server that serves the Hub's URL layout
 * (`/{owner}/{name}/resolve/main/{file}`) from the bundled model folder: no function of ours is mocked.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRepoId, downloadHubModel } from './hub';
import type { HubProgress } from './hub';
import { FileLoadError, ModelConfigError } from '../errors';

const MODEL = join(process.cwd(), 'public/models/peftlab-s');
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
  'meta/llama-tiny': { 'config.json': Buffer.from('{"model_type": "llama"}') },
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
      Buffer.compare(Buffer.from(files.weights), REPOS['peftlab/peftlab-s']!['model.safetensors']!),
    ).toBe(0);
    expect(files.tokenizer?.byteLength).toBe(REPOS['peftlab/peftlab-s']!['tokenizer.json']!.byteLength);
    const last = progress.filter((p) => p.file === 'model.safetensors').at(-1)!;
    expect(last.loaded).toBe(last.total);
    expect(last.total).toBe(files.weights.byteLength);
  });

  it('returns no tokenizer when the repo has none', async () => {
    expect((await downloadHubModel('peftlab/no-tokenizer', { endpoint })).tokenizer === null).toBe(true);
  });

  it('refuses another architecture before downloading weights', async () => {
    requested.length = 0;
    await expect(downloadHubModel('meta/llama-tiny', { endpoint })).rejects.toThrow(ModelConfigError);
    await expect(downloadHubModel('meta/llama-tiny', { endpoint })).rejects.toThrow(/"llama" model/);
    expect(requested.some((u) => u.endsWith('model.safetensors'))).toBe(false);
  });

  it('names a missing repo, missing safetensors, a gated repo, no network and a bad id', async () => {
    await expect(downloadHubModel('nobody/nothing', { endpoint })).rejects.toThrow(
      /nobody\/nothing\/config.json was not found/,
    );
    await expect(downloadHubModel('old/bin-only', { endpoint })).rejects.toThrow(/has no model.safetensors/);
    await expect(downloadHubModel('secret/gated', { endpoint })).rejects.toThrow(/private or gated/);
    await expect(downloadHubModel('a/b', { endpoint: 'http://127.0.0.1:9' })).rejects.toThrow(
      /could not reach/,
    );
    expect(() => checkRepoId('../../etc/passwd')).toThrow(FileLoadError);
    expect(() => checkRepoId('openai-community/gpt2')).not.toThrow();
    expect(() => checkRepoId('gpt2')).not.toThrow();
  });
});
