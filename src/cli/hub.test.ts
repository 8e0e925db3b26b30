/**
 * `--model owner/name` downloads from a Hub-layout server (a real local one, HF_ENDPOINT), caches,
 * and reads the cache afterwards even when the server is gone. The Llama family's repos come from
 * e2e/hub-server.mjs, the server the browser journeys use, in the real repos' layouts.
 */
import { describe, it, expect } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = join(process.cwd(), 'bin/peft-lab.mjs');
const MODEL = join(process.cwd(), 'public/models/peftlab-s');

describe('peft-lab --model with a Hub repo id', () => {
  it('downloads once, caches, and works offline from the cache', async () => {
    const files: Record<string, Buffer> = {
      'config.json': readFileSync(join(MODEL, 'config.json')),
      'model.safetensors': readFileSync(join(MODEL, 'model.safetensors')),
    }; // no tokenizer.json: vocab 2048 is not GPT-2's, so the first call must say so
    let hits = 0;
    const server = createServer((req, res) => {
      hits++;
      const m = /^\/peftlab\/(peftlab-s|with-tok)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
      const name = m?.[2] ?? '';
      const body =
        m?.[1] === 'with-tok' && name === 'tokenizer.json'
          ? readFileSync(join(MODEL, 'tokenizer.json'))
          : files[name];
      if (!body) return void res.writeHead(404, { connection: 'close' }).end();
      res.writeHead(200, { 'content-length': body.byteLength, connection: 'close' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const cache = mkdtempSync(join(tmpdir(), 'peft-lab-hub-'));
    const env = { ...process.env, HF_ENDPOINT: endpoint, PEFT_LAB_CACHE: cache };
    try {
      const noTok = await run('node', [BIN, 'info', '--model', 'peftlab/peftlab-s'], { env }).catch(
        (e: { stderr: string }) => e,
      );
      expect((noTok as { stderr: string }).stderr).toMatch(
        /\npeft-lab: .*has no tokenizer.json and its vocabulary \(2048\) is not GPT-2's/,
      );

      const first = await run('node', [BIN, 'info', '--model', 'peftlab/with-tok', '--json'], { env });
      expect(JSON.parse(first.stdout).parameters).toBe(556896);
      const hitsAfterFirst = hits;
      server.close();
      // The server is gone: the cached copy answers.
      const second = await run('node', [BIN, 'info', '--model', 'peftlab/with-tok', '--json'], { env });
      expect(JSON.parse(second.stdout).parameters).toBe(556896);
      expect(hits).toBe(hitsAfterFirst);
      const offline = await run('node', [BIN, 'info', '--model', 'peftlab/never-seen'], { env }).catch(
        (e: { stderr: string }) => e,
      );
      expect((offline as { stderr: string }).stderr).toMatch(/^peft-lab: could not reach/);
    } finally {
      server.close();
      rmSync(cache, { recursive: true, force: true });
    }
  });
});

describe('peft-lab --model with a Llama-family Hub repo (e2e/hub-server.mjs)', () => {
  it('SmolLM2-135M (one model.safetensors) and Qwen2.5-0.5B (sharded): info, generate, then offline', async () => {
    const hub = spawn(process.execPath, [join(process.cwd(), 'e2e/hub-server.mjs')], {
      env: { ...process.env, HUB_PORT: '0' },
    });
    const cache = mkdtempSync(join(tmpdir(), 'peft-lab-hub-llama-'));
    try {
      const port = await new Promise<string>((resolve, reject) => {
        hub.stdout.on('data', (d: Buffer) => {
          const m = /hub test server on (\d+)/.exec(d.toString());
          if (m) resolve(m[1]!);
        });
        hub.on('exit', (code) => reject(new Error(`hub-server.mjs exited with ${code}`)));
      });
      const env = { ...process.env, HF_ENDPOINT: `http://127.0.0.1:${port}`, PEFT_LAB_CACHE: cache };
      const smol = 'HuggingFaceTB/SmolLM2-135M';
      const info = JSON.parse((await run('node', [BIN, 'info', '--model', smol, '--json'], { env })).stdout);
      expect(info).toMatchObject({ family: 'llama', architecture: 'LlamaForCausalLM', n_kv_head: 2 });
      const gen = ['generate', '--prompt', 'The quick', '--max-new-tokens', '6', '--json'];
      const fromHub = JSON.parse((await run('node', [BIN, ...gen, '--model', smol], { env })).stdout);
      // The same tokens as the fixture folder the repo was served from.
      const fromFolder = JSON.parse(
        (
          await run(
            'node',
            [BIN, ...gen, '--model', join(process.cwd(), 'src/lib/model/fixtures/tiny-llama')],
            {
              env,
            },
          )
        ).stdout,
      );
      expect(fromHub.generated_ids).toHaveLength(6);
      expect(fromHub.generated_ids).toEqual(fromFolder.generated_ids);

      const qwen = 'Qwen/Qwen2.5-0.5B';
      const sharded = JSON.parse(
        (await run('node', [BIN, 'info', '--model', qwen, '--json'], { env })).stdout,
      );
      expect(sharded).toMatchObject({ family: 'qwen2', architecture: 'Qwen2ForCausalLM' });
      expect(sharded.weight_files).toHaveLength(4);
      const dir = join(cache, 'Qwen--Qwen2.5-0.5B');
      expect(existsSync(join(dir, 'model.safetensors.index.json'))).toBe(true);
      expect(existsSync(join(dir, 'model-00003-of-00004.safetensors'))).toBe(true);
      expect(existsSync(join(dir, 'model.safetensors'))).toBe(false);

      // The server is gone: both answer from the cache.
      hub.kill();
      const again = JSON.parse((await run('node', [BIN, ...gen, '--model', smol], { env })).stdout);
      expect(again.generated_ids).toEqual(fromHub.generated_ids);
      const qwenGen = await run('node', [BIN, ...gen, '--model', qwen], { env });
      expect(JSON.parse(qwenGen.stdout).generated_ids).toHaveLength(6);
    } finally {
      hub.kill();
      rmSync(cache, { recursive: true, force: true });
    }
  }, 240_000);
});
