/**
 * Every reader of outside bytes, as a fuzzing target: its input generator (near-valid mutants of a
 * real file) and how it is read. Node only (reads the committed fixtures). A new reader is one entry
 * in `TARGETS` (a Llama config.json reader: its seed config, `mutatedValue`, and its parse function).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  parseSafetensorsHeader,
  readSafetensors,
  readTensorAsFloat32,
  writeSafetensors,
} from '../io/safetensors';
import { parseGpt2Config } from '../model/config';
import { loadTokenizer } from '../tokenizer/tokenizer';
import { countWords, toTokenizerJson, trainBpe } from '../tokenizer/bpe-trainer';
import { readAdapterConfig, readAdapterWeights } from '../io/peft-format';
import { mapDeepSpeedConfig } from '../offload/deepspeed';
import { importClassification, importLanguageModel, inspectCsv, inspectJsonl } from '../data/import';
import { parseHash } from '../../app/hash';
import { paramsToSetup } from '../../app/compare-hash';
import { listSavedRaces, loadSavedRace } from '../../app/compare-saved';
import type { SettingsStore } from '../../app/compare-saved';
import { modelDetails } from '../../app/models';
import { readProgress } from '../../app/learn';
import type { JsonValue } from '../storage/db';
import type { FuzzTarget } from './harness';
import { showValue } from '../util/show';
import { mutatedJsonText, mutatedSafetensors, mutatedValue, nearValid, textBytes, weirdValue } from './gen';

const FIXTURES = join(import.meta.dirname, '..');
const TINY_GPT2 = join(FIXTURES, 'model/fixtures/tiny-gpt2');
const PEFT_FIXTURES = join(FIXTURES, 'peft/fixtures/peft-0.21');
/** The fixture folders (the directory also holds reference files such as init_reference.json). */
const fixtureDirs = (): string[] =>
  readdirSync(PEFT_FIXTURES, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name);

const read = (path: string): Uint8Array => new Uint8Array(readFileSync(path));
const readJson = (path: string): unknown => JSON.parse(readFileSync(path, 'utf8'));

/** A small file with every dtype we read, metadata, a zero-size tensor and a scalar. */
function seedSafetensors(): Uint8Array {
  return writeSafetensors(
    {
      'a.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6]) },
      'b.half': { dtype: 'F16', shape: [3], data: new Float32Array([0.5, -2, 65504]) },
      'c.bf16': { dtype: 'BF16', shape: [2], data: new Float32Array([1e-3, 3]) },
      'd.ids': { dtype: 'I64', shape: [2], data: new BigInt64Array([1n, -2n]) },
      'e.int': { dtype: 'I32', shape: [], data: new Int32Array([7]) },
      'f.empty': { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    },
    { format: 'pt' },
  );
}

/** A byte-level BPE small enough to build a thousand times a second. */
function seedTokenizer(): Record<string, unknown> {
  const words = countWords(['the cat sat on the mat; the dog ate the hat. naïve café 123']);
  return toTokenizerJson(trainBpe(words, { vocabSize: 280, specialTokens: ['<|endoftext|>'] }), [
    '<|endoftext|>',
  ]);
}

const CSV =
  'text,label\n"Win a prize, now",spam\nSee you at noon,ham\n"He said ""hi""",ham\nFree money!!!,spam\n' +
  'Cheap pills,spam\nLunch at one?,ham\n"Line\nbreak",ham\nClaim your reward,spam\n';
const JSONL = [
  ['Win a prize now', 'spam'],
  ['See you at noon', 'ham'],
  ['Free money', 'spam'],
  ['Lunch?', 'ham'],
  ['Cheap pills', 'spam'],
  ['He said "hi"', 'ham'],
  ['Claim your reward', 'spam'],
  ['Line\nbreak', 'ham'],
]
  .map(([text, label]) => JSON.stringify({ text, label }) + '\n')
  .join('');
const TXT = 'Call me Ishmael. Some years ago,\r\nnever mind how long precisely.\n\n\tHaving little money';

/** Text mutations that CSV and JSONL files meet: quotes, delimiters, line ends, BOM, empty lines. */
const tableText = (valid: string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constant(valid),
    fc
      .array(
        fc.tuple(
          fc.nat(),
          fc.oneof(
            fc.constantFrom(
              '"',
              '""',
              ',',
              ';',
              '\t',
              '\n',
              '\r',
              '\r\n',
              '\ufeff',
              '\\',
              '{',
              '}',
              ':',
              '\u0000',
              '\ud800',
            ),
            fc.string({ unit: 'grapheme', maxLength: 5 }),
          ),
          fc.boolean(),
        ),
        { minLength: 1, maxLength: 5 },
      )
      .map((ops) => {
        let s = valid;
        for (const [at, ins, del] of ops) {
          const i = at % (s.length + 1);
          s = s.slice(0, i) + ins + s.slice(del ? i + 1 : i);
        }
        return s;
      }),
    fc.string({ unit: 'binary', maxLength: 200 }),
    // Many lines, many columns, a huge field: the readers must stay linear.
    fc
      .nat({ max: 3 })
      .map(
        (k) =>
          [
            'text,label\n' + 'x,y\n'.repeat(20_000),
            'a'.repeat(200) + '\n' + 'b,'.repeat(5_000) + '\n',
            '"' + 'q'.repeat(300_000),
            '{"text":' + '['.repeat(50_000),
          ][k]!,
      ),
  );

interface ImportCase {
  format: 'csv' | 'jsonl';
  textColumn: string;
  labelColumn: string;
  maxBytes: number | undefined;
  chunk: number;
}

const importOptions: fc.Arbitrary<Omit<ImportCase, 'format'>> = fc.record({
  textColumn: fc.constantFrom('text', 'text', 'text', 'label', 'missing', ''),
  labelColumn: fc.constantFrom('label', 'label', 'label', 'text', 'missing'),
  maxBytes: fc.option(fc.constantFrom(0, 10, 1_000_000, -1, NaN), { nil: undefined, freq: 3 }),
  chunk: fc.integer({ min: 1, max: 64 }),
});

/** A byte stream in chunks of `size`, so multi-byte characters and CRLF fall across chunk edges. */
function chunked(bytes: Uint8Array, chunkSize: number): ReadableStream<Uint8Array> {
  // At most 2,000 chunks: a 300 KB input in 1-byte chunks measures the stream's overhead, not the reader.
  const size = Math.max(chunkSize, Math.ceil(bytes.length / 2000));
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) c.close();
      else {
        c.enqueue(bytes.slice(at, at + size));
        at += size;
      }
    },
  });
}

/** A stored race as saveRace writes it (the fields the screens read). */
const SAVED_RACE = {
  key: 'race:1',
  savedAt: 1,
  title: 'LoRA vs IA3',
  setup: { model: 'peftlab-s', task: 'spam', methods: ['lora', 'ia3'], steps: 40 },
  backend: 'wasm',
  snapshot: { lanes: [{ name: 'LoRA', points: [{ step: 1, loss: 2.5 }] }] },
  maps: [],
  ranks: [],
  nearest: [],
};
const RACE_INDEX = [
  { key: 'race:1', savedAt: 1, title: 'LoRA vs IA3', model: 'peftlab-s', task: 'spam', methods: ['LoRA'] },
];

function mapStore(entries: [string, unknown][]): SettingsStore {
  const m = new Map(entries);
  return {
    get: (k) => Promise.resolve(m.get(k)),
    set: (k, v: JsonValue) => {
      m.set(k, v);
      return Promise.resolve();
    },
    delete: (k) => {
      m.delete(k);
      return Promise.resolve();
    },
  };
}

const COMPARE_CTX = {
  models: ['peftlab-s', 'peftlab-m'],
  taskType: (id: string) =>
    id === 'spam' ? ('SEQ_CLS' as const) : id === 'brown' ? ('CAUSAL_LM' as const) : undefined,
};

/** Query strings as links carry them: valid ones, then keys and values mutated. */
const compareQuery = fc.oneof(
  fc.constant('model=peftlab-s&task=spam&methods=lora,ia3&steps=60&cfg.lora.r=8&lr.lora=0.01'),
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom(
            'model',
            'task',
            'methods',
            'steps',
            'time',
            'batch',
            'seq',
            'eval',
            'seed',
            'equal',
            'budget',
            'template',
          ),
          fc.constantFrom(
            'lr.lora',
            'lr.__proto__',
            'cfg.lora.r',
            'cfg.lora.targetModules',
            'cfg.ia3.x',
            'cfg.__proto__.r',
            'cfg.lora.__proto__',
            'cfg.lora.constructor',
            'lr.toString',
          ),
          fc.string({ maxLength: 10 }),
        ),
        fc.oneof(
          fc.constantFrom(
            'lora',
            'lora,ia3,lora',
            '1e999',
            '-1',
            'NaN',
            '0x10',
            '1e3',
            '',
            'null',
            '{text}',
            '{text}{text}',
            'c_attn,mlp.c_fc',
            'peftlab-m',
            'brown',
          ),
          weirdValue.map(showValue),
          fc.string({ unit: 'binary', maxLength: 12 }),
        ),
      ),
      { maxLength: 8 },
    )
    .map((pairs) => new URLSearchParams(pairs).toString()),
  fc.string({ unit: 'binary', maxLength: 100 }),
);

/** Erases a target's input type, so one table holds them all (each target's own parts agree). */
const target = <T>(t: FuzzTarget<T>): FuzzTarget => t as unknown as FuzzTarget;

export const TARGETS: FuzzTarget[] = [
  target({
    name: 'safetensors (header and body)',
    inputs: () => {
      const seeds = [seedSafetensors(), read(join(PEFT_FIXTURES, 'lora/adapter_model.safetensors'))];
      return fc.oneof(...seeds.map((s) => nearValid(s, mutatedSafetensors(s))));
    },
    read: (bytes: Uint8Array) => {
      const { tensors } = readSafetensors(bytes, 'model.safetensors');
      const header = parseSafetensorsHeader(bytes, 'model.safetensors');
      for (const info of header.tensors) readTensorAsFloat32(bytes, info);
      return tensors;
    },
    check: (result) => {
      for (const [name, t] of result as ReturnType<typeof readSafetensors>['tensors']) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        if (t.data.length !== n) throw new Error(`${name}: ${t.data.length} values for shape ${t.shape}`);
      }
    },
  }),
  target({
    name: 'config.json (GPT-2)',
    inputs: () => {
      const valid = readJson(join(TINY_GPT2, 'config.json'));
      return nearValid(valid, mutatedValue(valid));
    },
    read: (json: unknown) => parseGpt2Config(json),
    check: (c) => {
      const cfg = c as ReturnType<typeof parseGpt2Config>;
      for (const [k, v] of Object.entries(cfg)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${k} is ${v}`);
      }
      if (!Number.isSafeInteger(cfg.vocabSize * cfg.nEmbd)) throw new Error('vocab x width overflows');
    },
  }),
  target({
    name: 'config.json + tokenizer.json (Models screen)',
    inputs: () => {
      const config = readFileSync(join(TINY_GPT2, 'config.json'), 'utf8');
      const tok = JSON.stringify(seedTokenizer());
      return fc.tuple(
        nearValid(config, mutatedJsonText(JSON.parse(config))),
        fc.oneof(fc.constant(tok), mutatedJsonText(JSON.parse(tok))),
      );
    },
    read: ([config, tok]: [string, string]) => {
      const enc = new TextEncoder();
      return modelDetails(enc.encode(config).buffer as ArrayBuffer, enc.encode(tok).buffer as ArrayBuffer);
    },
  }),
  target({
    name: 'tokenizer.json',
    inputs: () => {
      const valid = seedTokenizer();
      return fc.oneof(
        nearValid<unknown>(valid, mutatedValue(valid)),
        mutatedJsonText(valid).map((t) => {
          try {
            return JSON.parse(t) as unknown;
          } catch {
            return t;
          }
        }),
      );
    },
    read: (json: unknown) => {
      const tok = loadTokenizer(json);
      // A loaded tokenizer must work: encode and decode real text without throwing.
      const ids = tok.encode('the cat sat on the mat, naïve 123 😀');
      tok.decode(ids);
      return tok;
    },
  }),
  target({
    name: 'adapter_config.json',
    inputs: () => {
      const configs = fixtureDirs().map((d) =>
        readFileSync(join(PEFT_FIXTURES, d, 'adapter_config.json'), 'utf8'),
      );
      return fc.oneof(...configs.map((c) => nearValid(c, mutatedJsonText(JSON.parse(c), true))));
    },
    read: (text: string) => readAdapterConfig(text, 'adapter'),
  }),
  target({
    name: 'adapter_model.safetensors',
    inputs: () => {
      const files = fixtureDirs().map((d) => read(join(PEFT_FIXTURES, d, 'adapter_model.safetensors')));
      return fc.oneof(...files.map((f) => nearValid(f, mutatedSafetensors(f))));
    },
    read: (bytes: Uint8Array) => readAdapterWeights(bytes, 'adapter'),
  }),
  target({
    name: 'CSV and JSONL import (classification)',
    inputs: () =>
      fc
        .tuple(
          fc.oneof(
            textBytes(tableText(CSV)).map((b) => [b, 'csv'] as const),
            textBytes(tableText(JSONL)).map((b) => [b, 'jsonl'] as const),
          ),
          importOptions,
        )
        .map(([[bytes, format], o]) => [bytes, { ...o, format }] as [Uint8Array, ImportCase]),
    read: async ([bytes, o]: [Uint8Array, ImportCase]) => {
      const opts = {
        format: o.format,
        textColumn: o.textColumn,
        labelColumn: o.labelColumn,
        maxBytes: o.maxBytes,
      };
      await (o.format === 'csv' ? inspectCsv : inspectJsonl)(chunked(bytes, o.chunk), {
        maxBytes: o.maxBytes,
      });
      return importClassification(chunked(bytes, o.chunk), opts);
    },
    check: (r) => {
      const out = r as Awaited<ReturnType<typeof importClassification>>;
      for (const e of out.examples) {
        if (typeof e.text !== 'string' || typeof e.label !== 'string' || e.label.trim() === '')
          throw new Error(`bad example ${JSON.stringify(e)}`);
      }
      if (out.labels.length < 2) throw new Error(`only ${out.labels.length} label(s) accepted`);
    },
  }),
  target({
    name: 'CSV, JSONL and text import (language model)',
    inputs: () =>
      fc.tuple(
        fc.oneof(textBytes(tableText(CSV)), textBytes(tableText(JSONL)), textBytes(tableText(TXT))),
        fc.constantFrom('csv', 'jsonl', 'txt') as fc.Arbitrary<'csv' | 'jsonl' | 'txt'>,
        fc.option(fc.constantFrom('text', 'label', 'nope'), { nil: undefined }),
        fc.integer({ min: 1, max: 64 }),
      ),
    read: ([bytes, format, textColumn, chunk]: [
      Uint8Array,
      'csv' | 'jsonl' | 'txt',
      string | undefined,
      number,
    ]) => importLanguageModel(chunked(bytes, chunk), { format, textColumn }),
    check: (r) => {
      const out = r as Awaited<ReturnType<typeof importLanguageModel>>;
      if (typeof out.text !== 'string' || out.text.trim() === '') throw new Error('empty corpus accepted');
    },
  }),
  target({
    name: 'DeepSpeed ds.json',
    inputs: () => {
      const valid = {
        zero_optimization: {
          stage: 3,
          offload_optimizer: { device: 'cpu', pin_memory: true },
          offload_param: { device: 'nvme', nvme_path: '/local_nvme' },
          overlap_comm: true,
        },
        gradient_accumulation_steps: 4,
        gradient_clipping: 1.0,
        fp16: { enabled: 'auto' },
        train_batch_size: 'auto',
        activation_checkpointing: { partition_activations: true },
      };
      return nearValid(JSON.stringify(valid), mutatedJsonText(valid, true));
    },
    read: (text: string) => mapDeepSpeedConfig(text),
    check: (r) => {
      const s = (r as ReturnType<typeof mapDeepSpeedConfig>).settings;
      if (![0, 1, 2, 3].includes(s.stage)) throw new Error(`stage ${s.stage}`);
      if (!Number.isSafeInteger(s.gradientAccumulationSteps) || s.gradientAccumulationSteps < 1)
        throw new Error(`accumulation ${s.gradientAccumulationSteps}`);
      if (!Number.isFinite(s.maxGradNorm) || s.maxGradNorm < 0) throw new Error(`clipping ${s.maxGradNorm}`);
    },
  }),
  target({
    name: "Lab's URL hash",
    inputs: () =>
      fc.oneof(
        fc.constant('#/lab?task=spam&method=lora'),
        compareQuery.map((q) => `#/lab?${q}`),
        fc.string({ unit: 'binary', maxLength: 60 }),
        fc.constantFrom('#', '?', '#/lab?%', '#/lab?%E0%A4%A', '#/lab?a=%ZZ&&=&task'),
      ),
    read: (hash: string) => {
      const { route, params } = parseHash(hash);
      return { route, task: params.get('task'), method: params.get('method') };
    },
  }),
  target({
    name: "Compare's URL hash",
    inputs: () => compareQuery,
    read: (query: string) => paramsToSetup(parseHash(`#/compare?${query}`).params, COMPARE_CTX),
    check: (r) => {
      const { setup } = r as ReturnType<typeof paramsToSetup>;
      for (const k of ['steps', 'batchSize', 'seqLen', 'evalEvery', 'seed', 'timeBudgetS'] as const) {
        if (!Number.isSafeInteger(setup[k]) || setup[k] < 0) throw new Error(`${k} is ${setup[k]}`);
      }
      for (const [m, lr] of Object.entries(setup.lr)) {
        if (!Number.isFinite(lr) || lr <= 0) throw new Error(`lr.${m} is ${lr}`);
      }
      if (Object.getPrototypeOf(setup.lr) !== Object.prototype) throw new Error('lr prototype changed');
    },
  }),
  target({
    name: 'saved races (IndexedDB)',
    inputs: () =>
      fc.tuple(
        nearValid<unknown>(RACE_INDEX, mutatedValue(RACE_INDEX)),
        nearValid<unknown>(SAVED_RACE, mutatedValue(SAVED_RACE)),
      ),
    read: async ([index, race]: [unknown, unknown]) => {
      const store = mapStore([
        ['races', index],
        ['race:1', race],
      ]);
      const list = await listSavedRaces(store);
      const loaded = await loadSavedRace('race:1', store);
      return { list, loaded };
    },
    check: (r) => {
      const { list, loaded } = r as {
        list: Awaited<ReturnType<typeof listSavedRaces>>;
        loaded: Awaited<ReturnType<typeof loadSavedRace>>;
      };
      for (const e of list) {
        if (typeof e.key !== 'string' || typeof e.title !== 'string' || !Array.isArray(e.methods))
          throw new Error(`bad index entry ${JSON.stringify(e)}`);
      }
      if (typeof loaded.title !== 'string' || !Array.isArray(loaded.snapshot?.lanes))
        throw new Error('a race without a title or lanes was loaded');
      for (const l of loaded.snapshot.lanes)
        if (typeof l?.name !== 'string') throw new Error('a lane without a name');
    },
  }),
  target({
    name: 'saved lesson progress (IndexedDB)',
    inputs: () => {
      const valid = {
        'what-is-lora': { '0': { outcome: 'pass', claim: 'c', text: 't', values: { r: 4 }, at: 1 } },
      };
      return nearValid<unknown>(valid, mutatedValue(valid));
    },
    read: (raw: unknown) => readProgress(raw),
  }),
];
