/**
 * Every reader of outside bytes, as a fuzzing target: its input generator (near-valid mutants of a
 * real file) and how it is read. Node only (reads the committed fixtures). A new reader is one entry
 * in `TARGETS` (a Llama config.json reader: its seed config, `mutatedValue`, and its parse function).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  parseSafetensorsHeader,
  readSafetensors,
  readTensorAsFloat32,
  writeSafetensors,
} from '../io/safetensors';
import { parseGpt2Config } from '../model/config';
import { countParameters, parseModelConfig } from '../model/family';
import { isLlamaConfig } from '../model/llama-config';
import { shardNames } from '../model/shards';
import { decodeMessage, encodeMessage } from '../swarm/protocol';
import type { Reply, Request, Tensors } from '../swarm/protocol';
import { listCheckpoints, readManifest } from '../offload/checkpoint-manifest';
import type { LabDb } from '../storage/handle';
import { parseBackendMeasurement } from '../storage/backend-measurement';
import { describeMeasurement, sameFingerprint } from '../backend/choose';
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
import {
  mutatedBytes,
  mutatedJsonText,
  mutatedSafetensors,
  mutatedValue,
  nearValid,
  textBytes,
  weirdValue,
} from './gen';

const FIXTURES = join(import.meta.dirname, '..');
const TINY_GPT2 = join(FIXTURES, 'model/fixtures/tiny-gpt2');
const LLAMA_FAMILY = ['tiny-llama', 'tiny-qwen2', 'tiny-mistral'].map((d) =>
  join(FIXTURES, 'model/fixtures', d),
);
const SHARD_INDEX = join(FIXTURES, 'model/fixtures/tiny-qwen2-sharded/model.safetensors.index.json');
const PEFT_FIXTURES = join(FIXTURES, 'peft/fixtures/peft-0.21');

/** The adapter folders among the PEFT fixtures (the folder also holds reference JSON files). */
const adapterDirs = (): string[] =>
  readdirSync(PEFT_FIXTURES).filter((d) => existsSync(join(PEFT_FIXTURES, d, 'adapter_config.json')));

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

/** A float32 wire tensor of `shape` with small distinct values. */
function wire(shape: number[]): { shape: number[]; data: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => (i % 7) * 0.25 - 0.5) };
}

type SwarmInput = { expect: 'request' | 'reply'; bytes: Uint8Array };

/** Valid swarm frames of every request and reply shape: prompts, a key mask, LoRA pairs, errors. */
function swarmSeeds(): SwarmInput[] {
  const peer = {
    peerId: 'peer-1',
    modelHash: 'ab'.repeat(32),
    start: 0,
    end: 2,
    throughput: 120.5,
    load: 1,
    address: 'ws://127.0.0.1:8765',
  };
  const lora = { scaling: 2, dropout: 0.1, seed: 42, training: true };
  const req = (h: Request, t: Tensors = new Map()): SwarmInput => ({
    expect: 'request',
    bytes: encodeMessage(h, t),
  });
  const rep = (h: Reply, t: Tensors = new Map()): SwarmInput => ({
    expect: 'reply',
    bytes: encodeMessage(h, t),
  });
  return [
    req(
      { kind: 'forward', id: 1, start: 2, end: 4 },
      new Map([
        ['hidden', wire([2, 3, 8])],
        ['pastK.2', wire([2, 2, 5, 4])],
        ['pastV.2', wire([2, 2, 5, 4])],
        ['pastK.3', wire([2, 2, 5, 4])],
        ['pastV.3', wire([2, 2, 5, 4])],
        ['keyMask', wire([2, 8])],
      ]),
    ),
    req(
      { kind: 'backward', id: 2, start: 0, end: 2, lora },
      new Map([
        ['hidden', wire([1, 4, 8])],
        ['gradOut', wire([1, 4, 8])],
        ['loraA0.0', wire([8, 2])],
        ['loraB0.0', wire([2, 24])],
        ['loraA1.1', wire([8, 2])],
        ['loraB1.1', wire([2, 8])],
      ]),
    ),
    req(
      { kind: 'step', id: 3, session: 's-1', start: 0, end: 1, position: 0 },
      new Map([['hidden', wire([1, 2, 8])]]),
    ),
    req({ kind: 'hello', id: 4, token: 'secret' }),
    req({ kind: 'announce', id: 5, peer }),
    req({ kind: 'heartbeat', id: 6, peerId: 'peer-1', load: 0, throughput: 3 }),
    req({ kind: 'close', id: 7, session: 's-1' }),
    rep({ kind: 'hello', id: 4, ok: true, peer }),
    rep({ kind: 'list', id: 8, ok: true, peers: [peer, { ...peer, peerId: 'peer-2', start: 2, end: 4 }] }),
    rep(
      { kind: 'backward', id: 2, ok: true },
      new Map([
        ['gradIn', wire([1, 4, 8])],
        ['dPastK.0', wire([1, 2, 3, 4])],
      ]),
    ),
    rep({ kind: 'step', id: 3, ok: true, length: 2 }, new Map([['hidden', wire([1, 2, 8])]])),
    rep({ kind: 'forward', id: 1, ok: false, error: { name: 'SwarmSessionError', message: 'gone' } }),
  ];
}

/** A frame's header (tensor list included) and data, split apart (for valid seed frames only). */
function splitFrame(bytes: Uint8Array): { header: Record<string, unknown>; body: Uint8Array } {
  const n = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + n))) as Record<string, unknown>;
  return { header, body: bytes.slice(Math.ceil((12 + n) / 4) * 4) };
}

/** A frame from header text and data, its length field and padding as an encoder writes them. */
function swarmFrame(headerText: string, body: Uint8Array, version = 1): Uint8Array {
  const h = new TextEncoder().encode(headerText);
  const start = Math.ceil((12 + h.length) / 4) * 4;
  const out = new Uint8Array(start + body.length);
  out.set([0x50, 0x4c, 0x53, 0x57], 0);
  const dv = new DataView(out.buffer);
  dv.setUint16(4, version, true);
  dv.setUint32(8, h.length, true);
  out.set(h, 12);
  out.set(body, start);
  return out;
}

const safeJson = (v: unknown): string => {
  try {
    return JSON.stringify(v) ?? 'null';
  } catch {
    return 'null';
  }
};

/**
 * Near-valid swarm frames: a seed's header mutated as a value or as text (its data kept, cut or
 * grown), its bytes mutated, another version, or a span as wide as the protocol allows (a peer
 * must not loop over a million blocks looking for prompts that are not there).
 */
function swarmFrames(): fc.Arbitrary<SwarmInput> {
  const cutOrGrow = (body: Uint8Array): fc.Arbitrary<Uint8Array> =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(body) },
      { weight: 1, arbitrary: fc.nat({ max: body.length }).map((k) => body.slice(0, k)) },
      { weight: 1, arbitrary: fc.constantFrom(4, 8, 12).map((k) => new Uint8Array(body.length + k)) },
      // 0xff bytes are NaN floats: refused, never computed on.
      { weight: 1, arbitrary: fc.constant(new Uint8Array(body.length).fill(0xff)) },
    );
  const perSeed = swarmSeeds().map(({ expect, bytes }) => {
    const { header, body } = splitFrame(bytes);
    return fc.oneof(
      { weight: 1, arbitrary: fc.constant({ expect, bytes }) },
      {
        weight: 4,
        arbitrary: fc
          .tuple(mutatedValue(header), cutOrGrow(body))
          .map(([h, b]) => ({ expect, bytes: swarmFrame(safeJson(h), b) })),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(mutatedJsonText(header), cutOrGrow(body))
          .map(([t, b]) => ({ expect, bytes: swarmFrame(t, b) })),
      },
      { weight: 2, arbitrary: mutatedBytes(bytes).map((b) => ({ expect, bytes: b })) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(fc.constantFrom(0, 2, 0xffff), fc.constantFrom<'request' | 'reply'>('request', 'reply'))
          .map(([v, e]) => ({ expect: e, bytes: swarmFrame(safeJson(header), body, v) })),
      },
    );
  });
  const wide = fc
    .tuple(
      fc.constantFrom('forward', 'backward', 'step'),
      fc.constantFrom(1 << 20, (1 << 20) - 1, 65_536, 4096),
      fc.boolean(),
    )
    .map(([kind, end, withLora]): SwarmInput => {
      const hidden = wire([1, 2, 8]);
      const one = new Uint8Array(hidden.data.buffer.slice(0));
      const tensors = [{ name: 'hidden', dtype: 'float32', shape: hidden.shape }];
      if (kind === 'backward') tensors.push({ name: 'gradOut', dtype: 'float32', shape: hidden.shape });
      const header = {
        kind,
        id: 9,
        start: 0,
        end,
        session: 's-1',
        position: 0,
        ...(withLora ? { lora: { scaling: 1, dropout: 0, seed: 1, training: true } } : {}),
        tensors,
      };
      const body = kind === 'backward' ? new Uint8Array([...one, ...one]) : one;
      return { expect: 'request', bytes: swarmFrame(JSON.stringify(header), body) };
    });
  return fc.oneof(...perSeed, wide);
}

/** A LabDb that holds only settings, for the readers that take one (checkpoint manifests). */
function settingsDb(entries: [string, unknown][]): LabDb {
  const m = new Map(entries);
  return { getSetting: (k: string) => Promise.resolve(m.get(k)) } as unknown as LabDb;
}

const MANIFEST = {
  runId: 'run-1',
  generation: 3,
  step: 120,
  savedAt: 1_764_000_000_000,
  bytes: 4096,
  meta: { modelId: 'peftlab-s', method: 'lora', config: { r: 8 }, task: 'spam' },
};

const MEASUREMENT = {
  fingerprint: {
    app: '0.1.0',
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64)',
    adapter: 'none',
    crossOriginIsolated: true,
  },
  timings: [
    { id: 'wasm-threads', label: 'wasm, 2 threads', msPerStep: 12.1 },
    { id: 'wasm', label: 'wasm, 1 thread', msPerStep: 14 },
    {
      id: 'webgpu',
      label: 'webgpu (google swiftshader, software)',
      msPerStep: null,
      note: 'over the 1500 ms cap',
    },
    { id: 'webgl', label: 'webgl', msPerStep: 95 },
  ],
  winner: 'wasm-threads',
  measuredAt: 1_764_000_000_000,
  probe: 'one training step',
};

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
      const configs = adapterDirs().map((d) =>
        readFileSync(join(PEFT_FIXTURES, d, 'adapter_config.json'), 'utf8'),
      );
      return fc.oneof(...configs.map((c) => nearValid(c, mutatedJsonText(JSON.parse(c), true))));
    },
    read: (text: string) => readAdapterConfig(text, 'adapter'),
  }),
  target({
    name: 'adapter_model.safetensors',
    inputs: () => {
      const files = adapterDirs().map((d) => read(join(PEFT_FIXTURES, d, 'adapter_model.safetensors')));
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
  target({
    name: 'config.json (Llama, Qwen2, Mistral)',
    inputs: () =>
      fc.oneof(
        ...LLAMA_FAMILY.map((d) => {
          const valid = readJson(join(d, 'config.json'));
          return nearValid(valid, mutatedValue(valid));
        }),
      ),
    read: (json: unknown) => {
      const c = parseModelConfig(json);
      // The Models screen and `peft-lab info` count parameters at once: that must stay cheap.
      return { c, params: countParameters(c) };
    },
    check: (r) => {
      const { c, params } = r as { c: ReturnType<typeof parseModelConfig>; params: number };
      if (!Number.isSafeInteger(params) || params < 1) throw new Error(`${params} parameters`);
      for (const [k, v] of Object.entries(c)) {
        const ok = k.endsWith('TokenId') ? Number.isSafeInteger(v) && v >= 0 : Number.isFinite(v) && v > 0;
        if (typeof v === 'number' && !ok) throw new Error(`${k} is ${v}`);
      }
      if (!isLlamaConfig(c)) return;
      if (!['llama', 'qwen2', 'mistral'].includes(c.modelType))
        throw new Error(`model type ${String(c.modelType)}`);
      if (c.nHead % c.nKvHead !== 0 || c.headDim % 2 !== 0)
        throw new Error(`heads ${c.nHead}/${c.nKvHead} of ${c.headDim}`);
      if (c.slidingWindow.length !== c.nLayer) throw new Error(`${c.slidingWindow.length} windows`);
      if (c.bosTokenId >= c.vocabSize || c.eosTokenId >= c.vocabSize)
        throw new Error('a token id outside the vocabulary');
    },
  }),
  target({
    name: 'model.safetensors.index.json',
    inputs: () => {
      const valid = readJson(SHARD_INDEX);
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
    read: (json: unknown) => shardNames(json),
    check: (r) => {
      for (const n of r as string[]) {
        if (!/^[\w.-]+\.safetensors$/.test(n)) throw new Error(`shard name ${n}`);
      }
    },
  }),
  target({
    name: 'swarm messages (binary frames)',
    inputs: swarmFrames,
    read: ({ expect, bytes }: SwarmInput) =>
      expect === 'request' ? decodeMessage(bytes, 'request') : decodeMessage(bytes, 'reply'),
    check: (r) => {
      const { header, tensors } = r as ReturnType<typeof decodeMessage>;
      if (typeof header.kind !== 'string' || !Number.isSafeInteger(header.id)) throw new Error('bad header');
      for (const [name, t] of tensors) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        if (t.data.length !== n) throw new Error(`${name}: ${t.data.length} values for [${t.shape}]`);
        if (!t.data.every(Number.isFinite)) throw new Error(`${name}: a non-finite value`);
      }
    },
    // A peer decodes every message on its one thread: a small frame must be judged in milliseconds.
    timeLimitMs: 250,
  }),
  target({
    name: 'checkpoint manifests (IndexedDB)',
    inputs: () =>
      fc.tuple(
        nearValid<unknown>(['run-1', 'run-2'], mutatedValue(['run-1', 'run-2'])),
        nearValid<unknown>(MANIFEST, mutatedValue(MANIFEST)),
      ),
    read: async ([index, manifest]: [unknown, unknown]) => {
      const db = settingsDb([
        ['checkpoints', index],
        ['checkpoint:run-1', manifest],
        ['checkpoint:run-2', { ...MANIFEST, runId: 'run-2', savedAt: 5 }],
      ]);
      const list = await listCheckpoints(db);
      return { list, one: await readManifest(db, 'run-1') };
    },
    check: (r) => {
      const { list, one } = r as {
        list: Awaited<ReturnType<typeof listCheckpoints>>;
        one: Awaited<ReturnType<typeof readManifest>>;
      };
      for (const m of one ? [...list, one] : list) {
        if (!Number.isSafeInteger(m.generation) || m.generation < 1)
          throw new Error(`generation ${m.generation}`);
        if (!Number.isSafeInteger(m.step) || m.step < 0) throw new Error(`step ${m.step}`);
        if (typeof m.runId !== 'string' || !Number.isFinite(m.savedAt)) throw new Error('a bad manifest');
      }
      for (let i = 1; i < list.length; i++)
        if (!(list[i - 1]!.savedAt >= list[i]!.savedAt)) throw new Error('the list is not newest first');
    },
  }),
  target({
    name: 'kept backend measurement (IndexedDB)',
    inputs: () => nearValid<unknown>(MEASUREMENT, mutatedValue(MEASUREMENT)),
    read: (raw: unknown) => {
      const m = parseBackendMeasurement(raw);
      // What the choice does with a kept measurement: compare fingerprints, show the reason line.
      sameFingerprint(m.fingerprint, MEASUREMENT.fingerprint);
      return describeMeasurement(m, true);
    },
    check: (r) => {
      if (typeof r !== 'string' || !r.startsWith('measured')) throw new Error(`reason line ${String(r)}`);
    },
  }),
];
