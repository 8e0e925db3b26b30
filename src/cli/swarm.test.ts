/**
 * `peft-lab swarm serve` as real processes on loopback (port 0): one holds the directory and
 * blocks 0:1, the other announces blocks 1:2 to it; `generate --swarm` and `train --swarm` through
 * them print what the local runs print.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toTokenizerJson } from '../lib/tokenizer/bpe-trainer';
import { BYTE_TO_UNICODE } from '../lib/tokenizer/byte-level';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/peft-lab.mjs');
const TINY = join(ROOT, 'src/lib/model/fixtures/tiny-gpt2');

let tmp = '';
let model = '';
const servers: ChildProcess[] = [];

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `swarm serve` and resolves with its first JSON line, once it listens. */
function serve(args: string[]): Promise<{ url: string; peer: { peerId: string } }> {
  const child = spawn(process.execPath, [BIN, 'swarm', 'serve', '--model', model, '--json', ...args], {
    cwd: tmp,
  });
  servers.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n'))
        resolve(JSON.parse(out.split('\n')[0]!) as { url: string; peer: { peerId: string } });
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => reject(new Error(`swarm serve exited with ${code}: ${err}`)));
  });
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'peft-lab-swarm-'));
  model = join(tmp, 'tiny-tok');
  mkdirSync(model);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(TINY, f), join(model, f));
  // The fixture's 97 ids as byte symbols and <|endoftext|> (as cli.test.ts builds it).
  const bytes = [10, ...Array.from({ length: 95 }, (_, i) => 32 + i)];
  const vocab = new Map(bytes.map((b, i) => [BYTE_TO_UNICODE[b]!, i]));
  vocab.set('<|endoftext|>', vocab.size);
  writeFileSync(
    join(model, 'tokenizer.json'),
    JSON.stringify(toTokenizerJson({ vocab, merges: [] }, ['<|endoftext|>'])),
  );
});

afterAll(() => {
  for (const s of servers) s.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
});

describe('peft-lab swarm', () => {
  it('serves blocks on localhost; generate and train through two serve processes match the local runs', async () => {
    const hub = await serve(['--blocks', '0:1', '--token', 'secret', '--peer-id', 'hub']);
    expect(hub.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    await serve(['--blocks', '1:2', '--token', 'secret', '--directory', hub.url, '--peer-id', 'tail']);
    const gen = ['generate', '--model', model, '--prompt', 'Call me', '--max-new-tokens', '6', '--json'];
    const train = ['train', '--model', model, '--method', 'prompt-tuning', '--steps', '2', '--seq-len', '8'];
    const small = [...train, '--batch-size', '2', '--json'];
    const swarm = ['--swarm', hub.url, '--swarm-token', 'secret'];
    const lora = [...small.map((a) => (a === 'prompt-tuning' ? 'lora' : a)), '--lora-dropout', '0.1'];
    const [localGen, localTrain, localLora] = await Promise.all([cli(gen), cli(small), cli(lora)]);
    const viaSwarm = await cli([...gen, ...swarm]);
    expect(viaSwarm.code, viaSwarm.stderr).toBe(0);
    expect(viaSwarm.stdout).toBe(localGen.stdout);
    expect(viaSwarm.stderr).toContain('swarm route: hub[0:1] -> tail[1:2]');
    const [trained, trainedLora] = await Promise.all([cli([...small, ...swarm]), cli([...lora, ...swarm])]);
    for (const [here, there] of [
      [localTrain, trained],
      [localLora, trainedLora],
    ] as const) {
      expect(there.code, there.stderr).toBe(0);
      const a = JSON.parse(here.stdout) as { final_loss: number; eval_after: { loss: number } };
      const b = JSON.parse(there.stdout) as { final_loss: number; eval_after: { loss: number } };
      expect(Math.abs(a.final_loss - b.final_loss)).toBeLessThan(1e-5);
      expect(Math.abs(a.eval_after.loss - b.eval_after.loss)).toBeLessThan(1e-5);
    }
  });

  it('refuses a wrong token, bad blocks and a method the swarm cannot train, with one line each', async () => {
    const hub = await serve(['--blocks', '0:2', '--token', 'right']);
    const [wrong, blocks, lora, sub] = await Promise.all([
      cli(['generate', '--model', model, '--prompt', 'x', '--swarm', hub.url, '--swarm-token', 'nope']),
      cli(['swarm', 'serve', '--model', model, '--blocks', '1:5']),
      cli(['train', '--model', model, '--method', 'ia3', '--swarm', hub.url]),
      cli(['swarm', '--model', model]),
    ]);
    expect(wrong.stderr).toMatch(/^peft-lab: wrong token for this peer\n$/);
    expect(blocks.stderr).toMatch(/^peft-lab: --blocks 1:5 runs past the model's 2 blocks/);
    expect(lora.stderr).toMatch(/^peft-lab: --swarm trains prompt-tuning.*and lora; ia3 is not one yet/);
    expect(sub.stderr).toMatch(/^peft-lab: peft-lab swarm needs a subcommand: serve/);
    for (const r of [wrong, blocks, lora, sub]) expect(r.code).not.toBe(0);
  });
});
