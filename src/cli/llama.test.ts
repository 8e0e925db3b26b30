/**
 * `peft-lab` on Llama-family folders written by transformers (src/lib/model/fixtures/tiny-*): info
 * names the family and reads shards, generate runs (its tokens against transformers' are checked in
 * src/lib/model/llama.test.ts), train writes a
 * LoRA adapter with PEFT's llama key names and defaults, compare races methods (LN tuning on the
 * RMSNorms among them) with their memory ledgers, export writes PEFT's llama targets, merge refuses
 * plainly. Spawns
 * `node bin/peft-lab.mjs`, as cli.test.ts does.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/peft-lab.mjs');
const FIX = join(ROOT, 'src/lib/model/fixtures');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp = '';

function cli(args: string[]): Promise<Result> {
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

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'peft-lab-llama-'));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('peft-lab on Llama-family folders', () => {
  it('info names the family, GQA and shards; generate runs; train writes a PEFT-named LoRA; merge refuses', async () => {
    const llama = join(FIX, 'tiny-llama');
    const out = join(tmp, 'lora');
    const [info, sharded, gen, trained, merge] = await Promise.all([
      cli(['info', '--model', llama]),
      cli(['info', '--model', join(FIX, 'tiny-qwen2-sharded'), '--json']),
      cli(['generate', '--model', llama, '--prompt', 'The quick', '--max-new-tokens', '6', '--json']),
      cli([
        ...['train', '--model', llama, '--method', 'lora', '--steps', '2', '--seq-len', '16'],
        ...['--batch-size', '2', '--out', out],
      ]),
      cli([
        'merge',
        '--model',
        llama,
        '--adapter',
        join(ROOT, 'src/lib/peft/fixtures/peft-0.21-llama/lora'),
        '--out',
        join(tmp, 'merged'),
      ]),
    ]);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toMatch(/family\s+Llama \(LlamaForCausalLM\)/);
    expect(info.stdout).toMatch(/heads\s+4 \(8 per head, 2 key\/value heads\)/);

    expect(sharded.code, sharded.stderr).toBe(0);
    const j = JSON.parse(sharded.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ family: 'qwen2', architecture: 'Qwen2ForCausalLM', n_kv_head: 2 });
    expect(j.weight_files).toHaveLength(4);

    expect(gen.code, gen.stderr).toBe(0);
    const g = JSON.parse(gen.stdout) as { prompt_ids: number[]; generated_ids: number[] };
    expect(g.generated_ids).toHaveLength(6);

    expect(trained.code, trained.stderr).toBe(0);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({
      peft_type: 'LORA',
      fan_in_fan_out: false,
      base_model_name_or_path: 'tiny-llama',
    });
    expect((config.target_modules as string[]).sort()).toEqual(['q_proj', 'v_proj']);
    const st = readFileSync(join(out, 'adapter_model.safetensors'));
    const header = st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8');
    expect(Object.keys(JSON.parse(header))).toContain(
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
    );

    expect(merge.code).not.toBe(0);
    expect(merge.stderr).toMatch(/^peft-lab: peft-lab merge runs on GPT-2 models only for now/);
  });

  it('compare races LoRA, LN tuning and prompt tuning on tiny-llama and writes each memory ledger', async () => {
    const json = join(tmp, 'race.json');
    const r = await cli([
      ...['compare', '--model', join(FIX, 'tiny-llama'), '--methods', 'lora,ln-tuning,prompt-tuning'],
      ...['--task', 'moby-dick', '--steps', '2', '--batch-size', '2', '--seq-len', '16', '--json', json],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const race = JSON.parse(readFileSync(json, 'utf8')) as {
      lanes: { method: string; status: string; ledger: { measured: unknown } }[];
    };
    expect(race.lanes.map((l) => [l.method, l.status])).toEqual([
      ['lora', 'done'],
      ['ln-tuning', 'done'],
      ['prompt-tuning', 'done'],
    ]);
    for (const l of race.lanes) expect(l.ledger.measured).not.toBeNull();
  });

  it("export writes PEFT's targets for the folder's family (LoRA's q_proj/v_proj, LN tuning's RMSNorms)", async () => {
    const [lora, ln] = await Promise.all(
      ['lora', 'ln-tuning'].map((m) =>
        cli(['export', '--model', join(FIX, 'tiny-llama'), '--method', m, '--out', join(tmp, `export-${m}`)]),
      ),
    );
    expect(lora!.code, lora!.stderr).toBe(0);
    const loraPy = readFileSync(join(tmp, 'export-lora', 'train.py'), 'utf8');
    expect(loraPy).toContain('target_modules=["q_proj", "v_proj"],');
    expect(loraPy).toContain('fan_in_fan_out=False,');
    expect(ln!.code, ln!.stderr).toBe(0);
    expect(readFileSync(join(tmp, 'export-ln-tuning', 'train.py'), 'utf8')).toContain(
      'return peft.LNTuningConfig(\n        target_modules=["input_layernorm", "post_attention_layernorm", "norm"],',
    );
  });
});
