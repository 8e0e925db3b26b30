/**
 * GPT-2 small's shape in Node: a model with GPT-2 small's exact config (124,439,808 parameters)
 * and random weights made here, never committed. This process makes the model, serialises it with
 * saveGpt2 (F32 safetensors, HF keys) into a temp folder and disposes it; a fresh Node process
 * (gpt2-small-load.ts) then times the real loading path from disk and generates, so its memory
 * numbers are those of loading alone, not of making and saving (tfjs wasm's heap never shrinks,
 * so in this process it stays at the size the save left it). The folder is deleted at the end.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Gpt2Config } from '../../src/lib/model/config';
import { countParameters, parseGpt2Config } from '../../src/lib/model/config';
import { Gpt2Model } from '../../src/lib/model/gpt2';
import { saveGpt2 } from '../../src/lib/model/load';
import { fmt } from './report';

/** GPT-2 small's config.json fields that set its shape (openai-community/gpt2). */
export const GPT2_SMALL_CONFIG = {
  model_type: 'gpt2',
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  layer_norm_epsilon: 1e-5,
  bos_token_id: 50256,
  eos_token_id: 50256,
};
/** openai-community/gpt2's parameter count (lm_head tied to wte). */
export const GPT2_SMALL_PARAMS = 124_439_808;

/** What the load process is asked to do; it writes a LoadResult next to the model files. */
export interface LoadJob {
  dir: string;
  seed: number;
  promptTokens: number;
  newTokens: number;
  forwardSeq: number;
  forwardRuns: number;
  /** Per-weight sums of the saved model, to check that the loaded weights are the same. */
  checksums: Record<string, number>;
}

export interface MemSnapshot {
  rssBytes: number;
  /** JS heap in use and memory outside it held by JS objects (Buffers, typed arrays). */
  heapUsedBytes: number;
  arrayBuffersBytes: number;
  /** tf.memory(): bytes and tensors tfjs holds (the weights live in the wasm heap). */
  tfBytes: number;
  tfTensors: number;
  /** Size of the wasm module's memory (grows, never shrinks), or null off wasm. */
  wasmHeapBytes: number | null;
}

export interface GenerateRun {
  /** Prompt pass + first read-back + pick: from the call to the first token. */
  ttftMs: number;
  totalMs: number;
  /** Tokens after the first, per second of the time after the first. */
  decodeTokensPerSec: number;
  decodeMsPerToken: number;
  ids: number[];
}

export interface LoadResult {
  /** Reading config.json + model.safetensors from disk (page cache: the file was just written). */
  readMs: number;
  /** parseSafetensorsHeader alone (a separate call; loadGpt2 parses the header again inside). */
  headerParseMs: number;
  /** loadGpt2: config + header parse, shape checks, copy of each tensor and upload into wasm tensors. */
  loadGpt2Ms: number;
  totalLoadMs: number;
  weightsLoadedMatch: boolean;
  weightsMismatched: string[];
  memory: {
    beforeLoad: MemSnapshot;
    /** Right after loadGpt2, the file's bytes still referenced. */
    afterLoad: MemSnapshot;
    /** The file's bytes dropped and garbage collected: what a loaded model costs. */
    afterLoadGc: MemSnapshot;
    /** After the four generate calls: wte^T is cached, and XNNPACK holds packed copies of the matmul weights. */
    afterGenerate: MemSnapshot;
    afterAll: MemSnapshot;
    /** Peak RSS of the load process up to the end of loading, and over its whole run. */
    peakRssAfterLoadBytes: number;
    peakRssBytes: number;
  };
  generate: {
    promptTokens: number;
    newTokens: number;
    /** Random ids over the vocab, seeded. */
    prompt: number[];
    /** Greedy, twice. */
    runs: GenerateRun[];
    /** Seeded sampling with these options, twice. */
    sampling: { temperature: number; topK: number; seed: number };
    sampled: GenerateRun[];
    /** Every run gave newTokens ids, each an integer in [0, vocab). */
    idsInVocab: boolean;
    /** The two greedy calls gave the same ids; likewise the two sampled ones. */
    deterministic: boolean;
    sampledDeterministic: boolean;
  };
  forward: {
    batch: number;
    seq: number;
    firstMs: number;
    samplesMs: number[];
    medianMs: number;
    tokensPerSec: number;
    cpuMedianMs: number;
    tokensPerCpuSec: number;
  };
  tensors: { afterLoad: number; afterAll: number };
}

export interface Gpt2SmallReport {
  config: Gpt2Config;
  params: number;
  paramsExpected: number;
  make: {
    randomMs: number;
    saveGpt2Ms: number;
    writeMs: number;
    fileBytes: number;
    configBytes: number;
    /** This process: before making the model, after it, with saveGpt2's result in hand, and after
     * the model is disposed and the garbage collected (what it holds while the load process runs). */
    before: MemSnapshot;
    afterRandom: MemSnapshot;
    afterSave: MemSnapshot;
    afterDispose: MemSnapshot;
    peakRssAfterSaveBytes: number;
    tempDir: string;
  };
  load: LoadResult;
  seconds: number;
}

export function memSnapshot(): MemSnapshot {
  const m = process.memoryUsage();
  const t = tf.memory();
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    arrayBuffersBytes: m.arrayBuffers,
    tfBytes: t.numBytes,
    tfTensors: t.numTensors,
    wasmHeapBytes: wasm?.HEAPU8?.buffer.byteLength ?? null,
  };
}

export const peakRss = (): number => process.resourceUsage().maxRSS * 1024;

/** Sum of each weight (float32 on the backend, so the same data gives the same sums bit for bit). */
export function weightChecksums(model: Gpt2Model): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of model.weights) {
    const s = tf.sum(v);
    out[name] = s.dataSync()[0]!;
    s.dispose();
  }
  return out;
}

/** A full collection when one can be had (it makes the RSS numbers mean something). */
function collectGarbage(): void {
  try {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  } catch {
    // Not essential: the numbers are then only noisier.
  }
}

export interface Gpt2SmallOptions {
  seed?: number;
  promptTokens?: number;
  newTokens?: number;
  forwardSeq?: number;
  forwardRuns?: number;
}

/**
 * Random model -> saveGpt2 -> config.json + model.safetensors in `dir`; the model is disposed.
 * Its own function so that saveGpt2's result is unreachable once it returns.
 */
async function makeFiles(config: Gpt2Config, seed: number, dir: string) {
  let t = performance.now();
  const model = Gpt2Model.random(config, seed);
  const randomMs = performance.now() - t;
  const afterRandom = memSnapshot();
  try {
    const checksums = weightChecksums(model);
    t = performance.now();
    const saved = await saveGpt2(model, 'F32');
    const saveGpt2Ms = performance.now() - t;
    const afterSave = memSnapshot();
    t = performance.now();
    writeFileSync(join(dir, 'config.json'), saved.config);
    writeFileSync(join(dir, 'model.safetensors'), saved.weights);
    const writeMs = performance.now() - t;
    return { randomMs, saveGpt2Ms, writeMs, checksums, afterRandom, afterSave };
  } finally {
    model.dispose();
  }
}

/** Makes, saves, and (in a fresh process) loads GPT-2 small; needs the wasm backend started. */
export async function runGpt2Small(opts: Gpt2SmallOptions = {}): Promise<Gpt2SmallReport> {
  const t0 = performance.now();
  const config = parseGpt2Config(GPT2_SMALL_CONFIG, 'GPT-2 small config');
  const params = countParameters(config);
  // Not 0: tfjs's randomNormal treats seed 0 as "no seed" (Math.random()), and Gpt2Model.random
  // gives its first weight (wte) the seed itself, so seed 0 would make wte differ on every run.
  const seed = opts.seed ?? 1;
  const dir = mkdtempSync(join(tmpdir(), 'peft-lab-gpt2-small-'));
  try {
    collectGarbage();
    const before = memSnapshot();
    const made = await makeFiles(config, seed, dir);
    const peakRssAfterSaveBytes = peakRss();
    // saveGpt2's copies and its output are garbage now; free them before the load process starts.
    collectGarbage();
    const afterDispose = memSnapshot();

    const job: LoadJob = {
      dir,
      seed,
      promptTokens: opts.promptTokens ?? 16,
      newTokens: opts.newTokens ?? 16,
      forwardSeq: opts.forwardSeq ?? 128,
      forwardRuns: opts.forwardRuns ?? 3,
      checksums: made.checksums,
    };
    writeFileSync(join(dir, 'job.json'), JSON.stringify(job));
    const child = join(dirname(fileURLToPath(import.meta.url)), 'gpt2-small-load.ts');
    // Same Node, same tsx loader (process.execArgv), plus --expose-gc for the memory snapshots.
    const r = spawnSync(process.execPath, [...process.execArgv, '--expose-gc', child, dir], {
      stdio: ['ignore', 'inherit', 'inherit'],
      timeout: 10 * 60 * 1000,
    });
    if (r.error) throw r.error;
    if (r.status !== 0) {
      throw new Error(`the load process exited with ${r.status ?? r.signal}; its stderr is above`);
    }
    const load = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as LoadResult;
    return {
      config,
      params,
      paramsExpected: GPT2_SMALL_PARAMS,
      make: {
        randomMs: made.randomMs,
        saveGpt2Ms: made.saveGpt2Ms,
        writeMs: made.writeMs,
        fileBytes: statSync(join(dir, 'model.safetensors')).size,
        configBytes: statSync(join(dir, 'config.json')).size,
        before,
        afterRandom: made.afterRandom,
        afterSave: made.afterSave,
        afterDispose,
        peakRssAfterSaveBytes,
        tempDir: dir,
      },
      load,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- report ----

const mib = (b: number | null): string => (b === null ? 'n/a' : `${fmt(b / 2 ** 20)} MiB`);
const ms = (x: number): string => (x >= 1000 ? `${fmt(x / 1000, 2)} s` : `${fmt(x, 0)} ms`);
const mem = (s: MemSnapshot): string => `${mib(s.rssBytes)} (${mib(s.wasmHeapBytes)})`;
const ok = (b: boolean): string => (b ? 'ok' : 'FAILED');

export function gpt2SmallText(r: Gpt2SmallReport): string {
  const c = r.config;
  const L = r.load;
  const m = L.memory;
  const f = L.forward;
  const g = L.generate;
  const lines = [
    `GPT-2 small (exact config, random weights made here; --no-gpt2-small skips this)`,
    `config     vocab ${c.vocabSize}, n_positions ${c.nPositions}, ${c.nLayer} layers, ${c.nEmbd} wide, ${c.nHead} heads, MLP ${c.nInner}, eps ${c.layerNormEpsilon}, bos/eos ${c.bosTokenId}/${c.eosTokenId}`,
    `params     ${fmt(r.params)} (GPT-2 small has ${fmt(r.paramsExpected)}: ${ok(r.params === r.paramsExpected)})`,
    `make       Gpt2Model.random ${ms(r.make.randomMs)}, saveGpt2 F32 ${ms(r.make.saveGpt2Ms)}, write ${ms(r.make.writeMs)}: model.safetensors ${fmt(r.make.fileBytes)} bytes (${mib(r.make.fileBytes)}), config.json ${r.make.configBytes} bytes, in ${r.make.tempDir} (deleted)`,
    `           this process, RSS (wasm heap): ${mem(r.make.before)} before, ${mem(r.make.afterRandom)} with the model, ${mem(r.make.afterSave)} with saveGpt2's result in hand (peak so far ${mib(r.make.peakRssAfterSaveBytes)}), ${mem(r.make.afterDispose)} after dispose + GC, while the load process runs`,
    `load       fresh Node process: read ${ms(L.readMs)} (config.json + model.safetensors, from the page cache), loadGpt2 ${ms(L.loadGpt2Ms)} (parse + checks + copy + upload to tensors; header parse alone ${ms(L.headerParseMs)}); total ${ms(L.totalLoadMs)}`,
    `           loaded weights equal the saved ones (per-tensor sums): ${L.weightsLoadedMatch ? 'ok' : `FAILED (${L.weightsMismatched.slice(0, 3).join(', ')})`}`,
    `memory     before load: RSS ${mib(m.beforeLoad.rssBytes)} (Node + tfjs wasm, ${mib(m.beforeLoad.wasmHeapBytes)} wasm heap)`,
    `           after load: RSS ${mib(m.afterLoad.rssBytes)} with the file's bytes still held, ${mib(m.afterLoadGc.rssBytes)} after dropping them; peak RSS ${mib(m.peakRssAfterLoadBytes)}`,
    `           tf.memory ${fmt(m.afterLoadGc.tfBytes)} bytes (${mib(m.afterLoadGc.tfBytes)}) in ${m.afterLoadGc.tfTensors} tensors; wasm heap ${mib(m.afterLoadGc.wasmHeapBytes)}`,
    `           after generating: RSS ${mib(m.afterGenerate.rssBytes)}, tf.memory ${mib(m.afterGenerate.tfBytes)} in ${m.afterGenerate.tfTensors} tensors (+ the cached wte^T), wasm heap ${mib(m.afterGenerate.wasmHeapBytes)} (XNNPACK keeps a packed copy of every matmul weight it has used)`,
    `           at the end: RSS ${mib(m.afterAll.rssBytes)}, wasm heap ${mib(m.afterAll.wasmHeapBytes)}; peak RSS of the load process ${mib(m.peakRssBytes)}`,
    `generate   KV cache (generate), ${g.promptTokens}-token prompt -> ${g.newTokens} new tokens; greedy twice, then sampled twice (${JSON.stringify(g.sampling)})`,
    ...[...g.runs, ...g.sampled].map(
      (x, i) =>
        `           ${i < g.runs.length ? 'greedy ' : 'sampled'} ${(i % g.runs.length) + 1}: first token ${ms(x.ttftMs)}, then ${x.ids.length - 1} tokens at ${fmt(x.decodeTokensPerSec, 1)} tokens/s (${fmt(x.decodeMsPerToken)} ms/token); ${ms(x.totalMs)} in all`,
    ),
    `check      ids within the vocab [0, ${c.vocabSize}): ${ok(g.idsInVocab)}; same ids from both calls: greedy ${ok(g.deterministic)}, sampled ${ok(g.sampledDeterministic)}`,
    `           prompt  ${JSON.stringify(g.prompt)}`,
    `           greedy  ${JSON.stringify(g.runs[0]?.ids ?? [])}`,
    `           sampled ${JSON.stringify(g.sampled[0]?.ids ?? [])}`,
    `forward    ${f.batch} x ${f.seq} tokens + LM logits, read back: median ${ms(f.medianMs)} of ${f.samplesMs.length} (${f.samplesMs.map((x) => fmt(x)).join(', ')} ms; first, untimed, ${ms(f.firstMs)}): ${fmt(f.tokensPerSec)} tokens/s; cpu ${ms(f.cpuMedianMs)}, ${fmt(f.tokensPerCpuSec)} tokens/cpu-s`,
    `tensors    ${L.tensors.afterLoad} after load, ${L.tensors.afterAll} after generation + forward (${L.tensors.afterAll - L.tensors.afterLoad <= 1 ? 'no leak; +1 is the cached wte^T' : 'LEAK'})`,
    `section    ${fmt(r.seconds, 1)} s`,
  ];
  return lines.join('\n');
}
