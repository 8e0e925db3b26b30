/**
 * Text generation with a KV cache: the prompt runs once, then each new token attends to the
 * cached keys/values. Greedy when temperature is 0; otherwise temperature, top-k and top-p
 * (nucleus) sampling from a seeded RNG, so the same seed gives the same text. A repetition
 * penalty (transformers' `repetition_penalty`) lowers every token already in the prompt or the
 * output before either. The CLI and the Lab's worker both sample here, so they agree.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import type { DecoderModel, ForwardOptions, LayerKV } from './decoder';
import { lmLogits } from './heads';
import { generationWindow } from './family';
import { InputError } from '../errors';

export interface GenerateOptions {
  maxNewTokens?: number;
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  /** Keep the smallest set of tokens whose probability reaches topP. */
  topP?: number;
  /**
   * transformers' repetition_penalty (CTRL, Keskar et al. 2019): the logit of every token already
   * seen is divided by it when positive and multiplied by it when negative; 1 (the default) is off.
   */
  repetitionPenalty?: number;
  seed?: number;
  /** Stop when this token is produced (not included in the output). */
  eosTokenId?: number | null;
  /**
   * Called with each new token id; return false to stop. A promise is awaited before the next
   * token, so a worker can yield to its message queue there (a Stop request arrives between tokens).
   */
  onToken?: (id: number) => boolean | void | Promise<boolean | void>;
  /** Positions taken by an adapter's virtual tokens, so a long context is cropped to leave them room. */
  reservedPositions?: number;
}

/**
 * Adds what a method contributes at inference (prompt embeddings, prefixes) to a forward call.
 * `first` is true for the prompt pass, false for cached single-token steps.
 */
export type ForwardDecorator = (opts: ForwardOptions, first: boolean) => ForwardOptions;

/** Checks the sampling settings, naming the field and what it takes (the CLI and the Lab's worker). */
export function checkSampling(opts: GenerateOptions): void {
  const { temperature = 0, topK, topP, repetitionPenalty = 1 } = opts;
  if (!(temperature >= 0 && Number.isFinite(temperature)))
    throw new InputError(`temperature must be 0 (greedy) or more, got ${temperature}`);
  if (topK !== undefined && !(Number.isInteger(topK) && topK >= 0))
    throw new InputError(`top-k must be a whole number of tokens (0 is off), got ${topK}`);
  if (topP !== undefined && !(topP > 0 && topP <= 1))
    throw new InputError(`top-p must be above 0 and at most 1, got ${topP}`);
  if (!(repetitionPenalty > 0 && Number.isFinite(repetitionPenalty)))
    throw new InputError(
      `the repetition penalty must be above 0 (1 is off, above 1 discourages repeats), got ${repetitionPenalty}`,
    );
}

/**
 * transformers' RepetitionPenaltyLogitsProcessor: each distinct token in `seen` has its logit
 * divided by `penalty` when positive, multiplied when negative, so it becomes less likely either way.
 * Returns a new row; `logits` is not changed.
 */
export function penalizeRepeats(
  logits: Float32Array,
  seen: readonly number[],
  penalty: number,
): Float32Array {
  if (penalty === 1 || seen.length === 0) return logits;
  const out = Float32Array.from(logits);
  for (const id of new Set(seen)) {
    const x = out[id];
    if (x === undefined) continue;
    out[id] = x > 0 ? x / penalty : x * penalty;
  }
  return out;
}

/**
 * Picks the next token from one row of logits; `seen` (the prompt and the output so far) is what
 * the repetition penalty lowers. Exported for tests and the swarm client.
 */
export function sampleToken(
  row: Float32Array,
  opts: GenerateOptions,
  rng: Rng,
  seen: readonly number[] = [],
): number {
  const logits = penalizeRepeats(row, seen, opts.repetitionPenalty ?? 1);
  const temperature = opts.temperature ?? 0;
  if (temperature <= 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let idx = [...logits.keys()].sort((a, b) => logits[b]! - logits[a]!);
  if (opts.topK && opts.topK > 0) idx = idx.slice(0, opts.topK);
  const max = logits[idx[0]!]!;
  let probs = idx.map((i) => Math.exp((logits[i]! - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && acc < topP * total) acc += probs[keep++]!;
    idx = idx.slice(0, Math.max(1, keep));
    probs = probs.slice(0, idx.length);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * total;
  for (let i = 0; i < idx.length; i++) {
    r -= probs[i]!;
    if (r <= 0) return idx[i]!;
  }
  return idx[idx.length - 1]!;
}

export async function generate(
  model: DecoderModel,
  promptIds: number[],
  opts: GenerateOptions = {},
  decorate: ForwardDecorator = (o) => o,
): Promise<number[]> {
  if (promptIds.length === 0) throw new InputError('the prompt is empty: give at least one token');
  checkSampling(opts);
  const maxNew = opts.maxNewTokens ?? 32;
  const rng = new Rng(opts.seed ?? 0);
  const out: number[] = [];
  let past: LayerKV[] | undefined;
  let context = [...promptIds];
  // Everything seen, for the repetition penalty: the context above is cropped when it fills the window.
  const seen = [...promptIds];
  const limit = generationWindow(model.config);
  // Virtual tokens (prompt and prefix methods) take positions before the text.
  const room = limit - (opts.reservedPositions ?? 0);
  const disposePast = (): void => past?.forEach((p) => tf.dispose([p.k, p.v]));
  try {
    for (let step = 0; step < maxNew; step++) {
      const pastLen = past?.[0]?.k.shape[2] ?? 0;
      let feed: number[];
      if (!past || pastLen + 1 > limit) {
        // (Re)start: run the whole visible context, cropped to the last half-window when full.
        disposePast();
        past = undefined;
        if (context.length > room) context = context.slice(context.length - Math.floor(room / 2));
        feed = context;
      } else {
        feed = [context[context.length - 1]!];
      }
      const first = past === undefined;
      const { logits, presents } = tf.tidy(() => {
        const r = model.forward(
          decorate(
            { ids: tf.tensor2d([feed], [1, feed.length], 'int32'), past, returnPresents: true },
            first,
          ),
        );
        // Only the last position is needed, whatever the decorator prepended (a soft prompt adds n).
        const T = r.hidden.shape[1];
        const last = lmLogits(model, tf.slice(r.hidden, [0, T - 1, 0], [1, 1, -1]) as tf.Tensor3D); // [1, 1, V]
        return { logits: last, presents: r.presents! };
      });
      disposePast();
      past = presents;
      const row = (await logits.data()) as Float32Array;
      logits.dispose();
      const id = sampleToken(row, opts, rng, seen);
      if (opts.eosTokenId != null && id === opts.eosTokenId) break;
      out.push(id);
      context.push(id);
      seen.push(id);
      if ((await opts.onToken?.(id)) === false) break;
    }
  } finally {
    disposePast();
  }
  return out;
}
