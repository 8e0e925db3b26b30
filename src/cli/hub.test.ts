/**
 * `--model owner/name` downloads from a Hub-layout server (a real local one, HF_ENDPOINT), caches,
 * and reads the cache afterwards even when the server is gone.
 */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
