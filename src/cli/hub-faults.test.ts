/**
 * `peft-lab --model owner/name` when the Hub misbehaves (a real local server, io/fault-hub.ts): the
 * CLI prints the named error's one line, the cache (PEFT_LAB_CACHE) gains nothing of the repo that
 * failed, a repo cached before is untouched, and HF_TOKEN is sent for a gated repo.
 */
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startFaultHub } from '../lib/io/fault-hub';
import type { Fault } from '../lib/io/fault-hub';

const run = promisify(execFile);
const BIN = join(process.cwd(), 'bin/peft-lab.mjs');
const MODEL = join(process.cwd(), 'public/models/peftlab-s');
const files = Object.fromEntries(
  ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => [f, readFileSync(join(MODEL, f))]),
);

describe('peft-lab --model with a Hub repo when the Hub misbehaves', () => {
  it('names the fault, caches nothing of it, keeps what was cached, and sends HF_TOKEN', async () => {
    let fault: Fault | undefined;
    const hub = await startFaultHub({ 'm/kept': files, 'm/peftlab-s': files }, (repo) =>
      repo === 'm/peftlab-s' ? fault : undefined,
    );
    const cache = mkdtempSync(join(tmpdir(), 'peft-lab-hub-faults-'));
    const env = { ...process.env, HF_ENDPOINT: hub.endpoint, PEFT_LAB_CACHE: cache };
    const info = (repo: string, extra: Record<string, string> = {}) =>
      run('node', [BIN, 'info', '--model', repo, '--json'], { env: { ...env, ...extra } });
    const stderr = (p: Promise<unknown>) =>
      p.then(
        () => '',
        (e: { stderr: string }) => e.stderr,
      );
    try {
      expect(JSON.parse((await info('m/kept')).stdout).parameters).toBe(556896);
      const kept = join(cache, 'm--kept');

      fault = { kind: 'cut', keep: 700_000 };
      // (config.json and tokenizer.json are shorter than the cut, so they come whole.)
      expect(await stderr(info('m/peftlab-s'))).toMatch(
        /\npeft-lab: m\/peftlab-s\/model.safetensors: the connection broke after 700000 bytes of 2\.1 MiB: try again; nothing of it was kept\n/,
      );
      expect(readdirSync(cache)).toEqual(['m--kept']);

      fault = { kind: 'status', status: 401, headers: { 'x-error-code': 'GatedRepo' } };
      const gated = await stderr(info('m/peftlab-s', { HF_TOKEN: 'hf_cli' }));
      expect(gated).toMatch(
        /^peft-lab: m\/peftlab-s\/config.json: the Hub refused access \(HTTP 401\); the repo is gated/,
      );
      expect(hub.requests.at(-1)?.authorization).toBe('Bearer hf_cli');
      const noToken = await stderr(info('m/peftlab-s', { HF_TOKEN: '' }));
      expect(noToken).toMatch(/then set HF_TOKEN to a token with read access/);
      expect(readdirSync(cache)).toEqual(['m--kept']);
      for (const [f, bytes] of Object.entries(files)) {
        expect(Buffer.compare(readFileSync(join(kept, f)), bytes), f).toBe(0);
      }

      // A `.partial` left by a process killed while writing is thrown away, not completed.
      mkdirSync(join(cache, 'm--peftlab-s.partial'));
      writeFileSync(join(cache, 'm--peftlab-s.partial', 'model-00001-of-00002.safetensors'), 'stale');
      fault = undefined;
      expect(JSON.parse((await info('m/peftlab-s')).stdout).parameters).toBe(556896);
      expect(readdirSync(cache).sort()).toEqual(['m--kept', 'm--peftlab-s']);
      expect(readdirSync(join(cache, 'm--peftlab-s')).sort()).toEqual(Object.keys(files).sort());
    } finally {
      await hub.close();
      rmSync(cache, { recursive: true, force: true });
    }
  }, 120_000);
});
