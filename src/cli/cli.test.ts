/**
 * End-to-end tests of the `peft-lab` command: each case spawns `node bin/peft-lab.mjs` from a
 * temporary working directory. Spawns start slowly (~2 s), so independent cases run in parallel.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../lib/io/safetensors';
import { toTokenizerJson } from '../lib/tokenizer/bpe-trainer';
import { BYTE_TO_UNICODE } from '../lib/tokenizer/byte-level';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/peft-lab.mjs');
const TINY = join(ROOT, 'src/lib/model/fixtures/tiny-gpt2');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

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

/** A failure is exactly one stderr line `peft-lab: ...` containing `mention`, and no stack trace. */
function expectOneLineError(r: Result, mention: string, code?: number): void {
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^peft-lab: /);
  expect(lines[0]).toContain(mention);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  if (code === undefined) expect(r.code).not.toBe(0);
  else expect(r.code).toBe(code);
}

function copyModel(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(TINY, f), join(dir, f));
  return dir;
}

/**
 * A byte-level BPE tokenizer.json with the fixture's 97 ids: printable ASCII, space and newline as
 * byte symbols (no merges), then `<|endoftext|>` = 96, the fixture's eos. trainBpe cannot produce
 * this (its vocabulary always holds all 256 bytes), so the vocabulary is built here and written
 * with the same toTokenizerJson.
 */
function tinyTokenizer(): Record<string, unknown> {
  const bytes = [10, ...Array.from({ length: 95 }, (_, i) => 32 + i)];
  const vocab = new Map(bytes.map((b, i) => [BYTE_TO_UNICODE[b]!, i]));
  vocab.set('<|endoftext|>', vocab.size);
  return toTokenizerJson({ vocab, merges: [] }, ['<|endoftext|>']);
}

/** The fixture's safetensors with a rewritten header (data bytes kept as they are). */
function withHeader(edit: (h: Record<string, { data_offsets: number[] }>) => void): Uint8Array {
  const bytes = readFileSync(join(TINY, 'model.safetensors'));
  const len = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + len).toString('utf8')) as Record<
    string,
    { data_offsets: number[] }
  >;
  edit(header);
  const text = Buffer.from(JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([prefix, text, bytes.subarray(8 + len)]);
}

let TOK = '';
const dirs: Record<string, string> = {};

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'peft-lab-cli-'));
  TOK = copyModel('tiny-tok');
  writeFileSync(join(TOK, 'tokenizer.json'), JSON.stringify(tinyTokenizer()));

  dirs.truncated = copyModel('truncated');
  const full = readFileSync(join(TINY, 'model.safetensors'));
  writeFileSync(join(dirs.truncated, 'model.safetensors'), full.subarray(0, full.length >> 1));

  dirs.lying = copyModel('lying');
  writeFileSync(
    join(dirs.lying, 'model.safetensors'),
    withHeader((h) => {
      const last = Object.values(h)
        .filter((t) => Array.isArray(t.data_offsets))
        .reduce((a, b) => (b.data_offsets[1]! > a.data_offsets[1]! ? b : a));
      last.data_offsets = [last.data_offsets[0]!, last.data_offsets[1]! + 4096];
    }),
  );

  // A sparse 4 GiB + 1 byte file: refused from its size, never read.
  dirs.huge = copyModel('huge');
  truncateSync(join(dirs.huge, 'model.safetensors'), 4 * 1024 ** 3 + 1);

  dirs.wide = copyModel('wide');
  const config = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dirs.wide, 'config.json'), JSON.stringify({ ...config, n_embd: 32 }));

  dirs.wordpiece = copyModel('wordpiece');
  writeFileSync(
    join(dirs.wordpiece, 'tokenizer.json'),
    JSON.stringify({
      version: '1.0',
      pre_tokenizer: { type: 'BertPreTokenizer' },
      model: { type: 'WordPiece', unk_token: '[UNK]', vocab: { '[UNK]': 0, a: 1 } },
    }),
  );

  // A LoRA adapter for a 32-wide model: its shapes cannot fit the 16-wide fixture.
  dirs.foreign = join(tmp, 'foreign-adapter');
  mkdirSync(dirs.foreign);
  writeFileSync(
    join(dirs.foreign, 'adapter_config.json'),
    JSON.stringify({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 2,
      lora_alpha: 4,
      target_modules: ['c_attn'],
    }),
  );
  const tensors = new Map<string, { dtype: 'F32'; shape: number[]; data: Float32Array }>();
  for (const l of [0, 1]) {
    const p = `base_model.model.transformer.h.${l}.attn.c_attn`;
    tensors.set(`${p}.lora_A.weight`, { dtype: 'F32', shape: [2, 32], data: new Float32Array(64) });
    tensors.set(`${p}.lora_B.weight`, { dtype: 'F32', shape: [96, 2], data: new Float32Array(192) });
  }
  writeFileSync(join(dirs.foreign, 'adapter_model.safetensors'), writeSafetensors(tensors));
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('peft-lab', () => {
  it('answers info, --version and --help, and refuses bad input with one clear line', async () => {
    const missing = join(tmp, 'no-such-model');
    const cases: [string, string[], (r: Result) => void][] = [
      [
        'info on the tiny fixture',
        ['info', '--model', TINY],
        (r) => {
          expect(r.code, r.stderr).toBe(0);
          expect(r.stdout).toMatch(/layers\s+2/);
          expect(r.stdout).toMatch(/parameters\s+8,656/);
          expect(r.stdout).toMatch(/backend\s+wasm/);
        },
      ],
      [
        'info --json with a tokenizer, cpu backend',
        ['--backend', 'cpu', 'info', '--model', TOK, '--json'],
        (r) => {
          expect(r.code, r.stderr).toBe(0);
          expect(JSON.parse(r.stdout)).toMatchObject({
            n_layer: 2,
            n_embd: 16,
            n_head: 4,
            vocab_size: 97,
            n_positions: 32,
            parameters: 8656,
            tokenizer_vocab_size: 97,
            backend: 'cpu',
          });
        },
      ],
      ['--version', ['--version'], (r) => expect(r.stdout.trim()).toBe(VERSION)],
      [
        'train --help',
        ['train', '--help'],
        (r) => {
          expect(r.stdout).toContain('--target-modules');
          expect(r.stdout).toContain('--weights-f16');
        },
      ],
      [
        // The CLI runs wasm or cpu: f16 weights are refused before anything loads (SettingsError).
        'train --weights-f16 on wasm',
        ['train', '--model', TOK, '--method', 'lora', '--weights-f16'],
        (r) =>
          expectOneLineError(
            r,
            '--weights-f16: f16 weights are for the webgpu backend (its kernels read them in place), and wasm is running: train in the Lab on its webgpu backend',
            1,
          ),
      ],
      [
        'generate without a tokenizer',
        ['generate', '--model', TINY, '--prompt', 'hi', '--json'],
        (r) => expectOneLineError(r, join(TINY, 'tokenizer.json'), 1),
      ],
      [
        'truncated safetensors',
        ['info', '--model', dirs.truncated!],
        (r) => expectOneLineError(r, `${dirs.truncated}/model.safetensors`, 1),
      ],
      [
        'header lying about offsets',
        ['info', '--model', dirs.lying!],
        (r) => expectOneLineError(r, `${dirs.lying}/model.safetensors`, 1),
      ],
      [
        'file over 4 GiB',
        ['info', '--model', dirs.huge!],
        (r) => expectOneLineError(r, `${dirs.huge}/model.safetensors`, 1),
      ],
      [
        'config with the wrong n_embd',
        ['info', '--model', dirs.wide!],
        (r) => expectOneLineError(r, `${dirs.wide}/model.safetensors`, 1),
      ],
      [
        'WordPiece tokenizer.json',
        ['info', '--model', dirs.wordpiece!],
        (r) => expectOneLineError(r, `${dirs.wordpiece}/tokenizer.json`, 1),
      ],
      [
        'adapter for another model',
        ['generate', '--model', TOK, '--adapter', dirs.foreign!, '--prompt', 'hi'],
        (r) => expectOneLineError(r, `${dirs.foreign}/adapter_model.safetensors`, 1),
      ],
      [
        'unknown flag',
        ['info', '--model', TINY, '--frobnicate'],
        (r) => expectOneLineError(r, '--frobnicate', 2),
      ],
      ['missing dir', ['info', '--model', missing], (r) => expectOneLineError(r, missing, 1)],
      ['unknown command', ['fly'], (r) => expectOneLineError(r, 'fly', 2)],
      [
        'bad number',
        ['train', '--model', TOK, '--method', 'lora', '--steps', 'abc'],
        (r) => expectOneLineError(r, '--steps', 2),
      ],
      [
        'unknown task',
        ['train', '--model', TOK, '--method', 'lora', '--task', 'poetry'],
        (r) => expectOneLineError(r, 'moby-dick', 2),
      ],
      [
        'unknown method',
        ['train', '--model', TOK, '--method', 'magic'],
        (r) => expectOneLineError(r, 'lora', 2),
      ],
    ];
    const results = await Promise.all(cases.map(([, args]) => cli(args)));
    cases.forEach(([name, , check], i) => {
      try {
        check(results[i]!);
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message}`, { cause: e });
      }
    });
  });

  it('generates deterministic JSON, trains a LoRA adapter, and generates with it', async () => {
    const gen = ['generate', '--model', TOK, '--prompt', 'Call me', '--max-new-tokens', '8', '--json'];
    const sampled = [...gen, '--temperature', '1', '--top-k', '20', '--seed', '7'];
    const out = join(tmp, 'adapter');
    const [a, b, c, trained] = await Promise.all([
      cli(sampled),
      cli(sampled),
      cli(gen),
      cli([
        ...['train', '--model', TOK, '--method', 'lora', '--steps', '3', '--seq-len', '16'],
        ...['--batch-size', '2', '--out', out],
      ]),
    ]);
    for (const r of [a, b, c]) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split('\n')).toHaveLength(1);
      const j = JSON.parse(r.stdout) as { prompt_ids: unknown[]; generated_ids: unknown[]; text: string };
      expect(j.prompt_ids.length).toBeGreaterThan(0);
      for (const id of [...j.prompt_ids, ...j.generated_ids]) expect(Number.isInteger(id)).toBe(true);
      expect(typeof j.text).toBe('string');
    }
    expect(a.stdout).toBe(b.stdout);

    expect(trained.code, trained.stderr).toBe(0);
    expect(trained.stdout).toMatch(/held-out\s+loss [\d.]+ -> [\d.]+/);
    expect(trained.stderr).toMatch(/step 3\/3 loss/);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({ peft_type: 'LORA', base_model_name_or_path: 'tiny-tok', r: 8 });
    const st = readFileSync(join(out, 'adapter_model.safetensors'));
    const header = st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString('utf8');
    expect(Object.keys(JSON.parse(header))).toContain(
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
    );

    const adapted = await cli(['generate', '--model', TOK, '--adapter', out, '--prompt', 'Call me']);
    expect(adapted.code, adapted.stderr).toBe(0);
    expect(adapted.stdout.startsWith('Call me')).toBe(true);
    expect(existsSync(out)).toBe(true);
  });

  it('trains prefix tuning and AdaLoRA from their flags, generates with and evaluates a prefix, refuses pairs that do not fit', async () => {
    const prefix = join(tmp, 'prefix');
    const ada = join(tmp, 'adalora');
    const small = ['--steps', '3', '--seq-len', '8', '--batch-size', '2'];
    const [p, a, v2, wrong, help] = await Promise.all([
      cli([
        ...['train', '--model', TOK, '--method', 'prefix-tuning', ...small, '--out', prefix],
        ...['--num-virtual-tokens', '3', '--prefix-projection', '--encoder-hidden-size', '8'],
      ]),
      cli([
        'train',
        '--model',
        TOK,
        '--method',
        'adalora',
        ...small,
        '--init-r',
        '4',
        '--target-r',
        '2',
        '--out',
        ada,
      ]),
      cli(['train', '--model', TOK, '--method', 'p-tuning-v2', ...small]),
      cli(['train', '--model', TOK, '--method', 'lora', '--prefix-projection', ...small]),
      cli(['train', '--help']),
    ]);
    expect(p.code, p.stderr).toBe(0);
    const pc = JSON.parse(readFileSync(join(prefix, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(pc).toMatchObject({
      peft_type: 'PREFIX_TUNING',
      prefix_projection: true,
      encoder_hidden_size: 8,
      num_virtual_tokens: 3,
    });
    expect(a.code, a.stderr).toBe(0);
    const ac = JSON.parse(readFileSync(join(ada, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    // AdaLoRA's budget schedule takes its length from --steps; PEFT spells deltaT so.
    expect(ac).toMatchObject({ peft_type: 'ADALORA', total_step: 3, init_r: 4, target_r: 2, deltaT: 1 });
    expectOneLineError(v2, 'P-tuning v2 does not train CAUSAL_LM tasks', 2);
    expectOneLineError(wrong, '--prefix-projection does not apply to --method lora', 2);
    for (const flag of [
      '--num-virtual-tokens',
      '--prompt-tuning-init',
      '--delta-t',
      '--feedforward-modules',
      '--encoder-reparameterization-type',
    ])
      expect(help.stdout).toContain(flag);
    const [gen, ev, evWrong] = await Promise.all([
      cli([
        'generate',
        '--model',
        TOK,
        '--adapter',
        prefix,
        '--prompt',
        'Call me',
        '--max-new-tokens',
        '4',
        '--json',
      ]),
      cli(['eval', '--model', TOK, '--adapter', prefix, '--task', 'moby-dick', '--seq-len', '8', '--json']),
      cli(['eval', '--model', TOK, '--adapter', prefix, '--task', 'spam']),
    ]);
    expect(ev.code, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout)).toMatchObject({
      task: 'moby-dick',
      peft_type: 'PREFIX_TUNING',
      metric: 'perplexity',
    });
    expectOneLineError(evWrong, 'is a CAUSAL_LM adapter; --task spam is SEQ_CLS', 2);
    // merge_and_unload: the merged AdaLoRA model answers as base + adapter; a prefix has nothing to merge.
    const merged = join(tmp, 'merged');
    const [m1, m2] = await Promise.all([
      cli(['merge', '--model', TOK, '--adapter', ada, '--out', merged]),
      cli(['merge', '--model', TOK, '--adapter', prefix, '--out', join(tmp, 'nothing')]),
    ]);
    expect(m1.code, m1.stderr).toBe(0);
    expectOneLineError(m2, 'nothing to merge', 2);
    const say = ['generate', '--prompt', 'Call me', '--max-new-tokens', '6', '--json'];
    const [viaAdapter, viaMerged] = await Promise.all([
      cli([...say, '--model', TOK, '--adapter', ada]),
      cli([...say, '--model', merged]),
    ]);
    expect(viaMerged.code, viaMerged.stderr).toBe(0);
    expect(viaMerged.stdout).toBe(viaAdapter.stdout);
    expect(gen.code, gen.stderr).toBe(0);
    expect((JSON.parse(gen.stdout) as { generated_ids: number[] }).generated_ids.length).toBeGreaterThan(0);
  });
});
