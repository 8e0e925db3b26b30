/**
 * The load half of the GPT-2 small bench (see gpt2-small.ts), run in a fresh Node process:
 * `tsx --expose-gc scripts/bench/gpt2-small-load.ts DIR`. Reads DIR/job.json, loads DIR's
 * config.json + model.safetensors the way the app and CLI do (loadGpt2), generates and runs a
 * forward, and writes DIR/result.json.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeBackend } from '../../src/lib/backend/node';
import { parseSafetensorsHeader } from '../../src/lib/io/safetensors';
import type { GenerateOptions } from '../../src/lib/model/generate';
import { generate } from '../../src/lib/model/generate';
import type { Gpt2Model } from '../../src/lib/model/gpt2';
import { lmLogits } from '../../src/lib/model/heads';
import { loadGpt2 } from '../../src/lib/model/load';
import { Rng } from '../../src/lib/util/rng';
import type { GenerateRun, LoadJob, LoadResult } from './gpt2-small';
import { memSnapshot, peakRss, weightChecksums } from './gpt2-small';
import { median } from './measure';

const SAMPLING = { temperature: 1, topK: 40, seed: 7 };

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

async function timedGenerate(
  model: Gpt2Model,
  prompt: number[],
  n: number,
  sampling: GenerateOptions = { temperature: 0 },
): Promise<GenerateRun> {
  const t0 = performance.now();
  let first = NaN;
  const ids = await generate(model, prompt, {
    ...sampling,
    maxNewTokens: n,
    eosTokenId: null,
    onToken: () => {
      if (Number.isNaN(first)) first = performance.now();
    },
  });
  const end = performance.now();
  const decodeMs = end - first;
  return {
    ttftMs: first - t0,
    totalMs: end - t0,
    decodeTokensPerSec: ((ids.length - 1) * 1000) / decodeMs,
    decodeMsPerToken: decodeMs / (ids.length - 1),
    ids,
  };
}

/**
 * The loading path: files from disk -> loadGpt2. The file's bytes are unreachable once this
 * returns, so a collection after it shows what the loaded model alone costs.
 */
function loadFromDisk(dir: string) {
  const t0 = performance.now();
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as unknown;
  // A Buffer is a Uint8Array: passed as is, with no extra copy of the 500 MB.
  const weights = readFileSync(join(dir, 'model.safetensors'));
  const t1 = performance.now();
  const model = loadGpt2({ config, weights, source: dir });
  const t2 = performance.now();
  const afterLoad = memSnapshot();
  const peakRssAfterLoadBytes = peakRss();
  parseSafetensorsHeader(weights, `${dir}/model.safetensors`);
  return {
    model,
    readMs: t1 - t0,
    headerParseMs: performance.now() - t2,
    loadGpt2Ms: t2 - t1,
    totalLoadMs: t2 - t0,
    afterLoad,
    peakRssAfterLoadBytes,
  };
}

async function main(dir: string): Promise<void> {
  const job = JSON.parse(readFileSync(join(dir, 'job.json'), 'utf8')) as LoadJob;
  await initNodeBackend('wasm');
  gc();
  const beforeLoad = memSnapshot();

  const loaded = loadFromDisk(dir);
  const { model } = loaded;
  gc();
  const afterLoadGc = memSnapshot();
  const tensorsAfterLoad = tf.memory().numTensors;

  try {
    const sums = weightChecksums(model);
    const mismatched = Object.keys(job.checksums).filter((k) => !Object.is(sums[k], job.checksums[k]));
    if (Object.keys(sums).length !== Object.keys(job.checksums).length) mismatched.push('(weight count)');

    // ---- greedy generation with the KV cache, twice ----
    const vocab = model.config.vocabSize;
    const rng = new Rng(job.seed + 1);
    const prompt = Array.from({ length: job.promptTokens }, () => rng.int(vocab));
    const runs = [
      await timedGenerate(model, prompt, job.newTokens),
      await timedGenerate(model, prompt, job.newTokens),
    ];
    // Seeded sampling too: with random weights greedy may repeat one token, which proves little.
    const sampled = [
      await timedGenerate(model, prompt, job.newTokens, SAMPLING),
      await timedGenerate(model, prompt, job.newTokens, SAMPLING),
    ];
    const afterGenerate = memSnapshot();
    const same = (a: GenerateRun[]): boolean => a[0]!.ids.join(',') === a[1]!.ids.join(',');
    const idsInVocab = [...runs, ...sampled].every(
      (r) =>
        r.ids.length === job.newTokens && r.ids.every((id) => Number.isInteger(id) && id >= 0 && id < vocab),
    );

    // ---- one forward of 1 x seq, with the LM head, read back ----
    const ids = tf.tensor2d(
      Array.from({ length: job.forwardSeq }, () => rng.int(vocab)),
      [1, job.forwardSeq],
      'int32',
    );
    const forwardOnce = (): { ms: number; cpuMs: number } => {
      const c0 = process.cpuUsage();
      const s = performance.now();
      const logits = tf.tidy(() => lmLogits(model, model.forward({ ids, training: false }).hidden));
      logits.dataSync();
      logits.dispose();
      const dc = process.cpuUsage(c0);
      return { ms: performance.now() - s, cpuMs: (dc.user + dc.system) / 1000 };
    };
    const first = forwardOnce();
    const timed = Array.from({ length: job.forwardRuns }, forwardOnce);
    ids.dispose();
    const samplesMs = timed.map((x) => x.ms);
    const medianMs = median(samplesMs);
    const cpuMedianMs = median(timed.map((x) => x.cpuMs));

    gc();
    const result: LoadResult = {
      readMs: loaded.readMs,
      headerParseMs: loaded.headerParseMs,
      loadGpt2Ms: loaded.loadGpt2Ms,
      totalLoadMs: loaded.totalLoadMs,
      weightsLoadedMatch: mismatched.length === 0,
      weightsMismatched: mismatched,
      memory: {
        beforeLoad,
        afterLoad: loaded.afterLoad,
        afterLoadGc,
        afterGenerate,
        afterAll: memSnapshot(),
        peakRssAfterLoadBytes: loaded.peakRssAfterLoadBytes,
        peakRssBytes: peakRss(),
      },
      generate: {
        promptTokens: job.promptTokens,
        newTokens: job.newTokens,
        prompt,
        runs,
        sampling: SAMPLING,
        sampled,
        idsInVocab,
        deterministic: same(runs),
        sampledDeterministic: same(sampled),
      },
      forward: {
        batch: 1,
        seq: job.forwardSeq,
        firstMs: first.ms,
        samplesMs,
        medianMs,
        tokensPerSec: (job.forwardSeq * 1000) / medianMs,
        cpuMedianMs,
        tokensPerCpuSec: (job.forwardSeq * 1000) / cpuMedianMs,
      },
      tensors: { afterLoad: tensorsAfterLoad, afterAll: tf.memory().numTensors },
    };
    writeFileSync(join(dir, 'result.json'), JSON.stringify(result));
  } finally {
    model.dispose();
  }
}

const dir = process.argv[2];
if (!dir) {
  console.error(
    'usage: tsx --expose-gc scripts/bench/gpt2-small-load.ts DIR (run by scripts/bench/gpt2-small.ts)',
  );
  process.exit(2);
}
await main(dir);
