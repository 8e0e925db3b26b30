/**
 * Our SIMD causal attention on wasm (attention.ts over simd.ts) against the stock composition on
 * the cpu backend (ops.ts's packedSelfAttention with gpt2.ts's causal mask): values and the
 * gradient for qkv, at the bench's shape and at shapes whose T and head size need padding to 8.
 * Also the kernel's building blocks against plain JS loops, and the switch that turns it off. With a
 * padding mask (classification batches: right padding, rows of different lengths), the same against
 * the stock composition under attentionBias / llamaAttentionBias with that mask.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../../backend/node';
import { attentionBias } from '../../model/gpt2';
import { llamaAttentionBias, repeatKv } from '../../model/llama';
import { multiHeadAttention, packedSelfAttention } from '../../model/ops';
import {
  ATTENTION_BACKWARD,
  ATTENTION_FORWARD,
  GQA_FORWARD,
  simdCausalAttention,
  simdCausalAttentionGqa,
} from './attention';
import { setWasmKernels } from './heap';
import { simdKernels, simdModuleBytes, THREADED_HEAP_MAX_PAGES } from './simd';
import { maxDiff, onBoth } from './testing';

describe('SIMD module', () => {
  it('is valid WebAssembly and its gemm and causal softmax match JS loops', () => {
    expect(WebAssembly.validate(simdModuleBytes())).toBe(true);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const k = simdKernels(memory)!;
    expect(k).not.toBeNull();
    const f = new Float32Array(memory.buffer);
    const [M, N, K, A, B, C] = [8, 16, 12, 0, 1000, 2000];
    for (let i = 0; i < M * K; i++) f[A + i] = Math.sin(i);
    for (let i = 0; i < K * N; i++) f[B + i] = Math.cos(i);
    k.gemm(M, N, K, 4 * A, 4 * K, 4, 4 * B, 4 * N, 4 * C, 4 * N, 0.5, 0, 0);
    let err = 0;
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let q = 0; q < K; q++) s += f[A + m * K + q]! * f[B + q * N + n]!;
        err = Math.max(err, Math.abs(0.5 * s - f[C + m * N + n]!));
      }
    }
    expect(err).toBeLessThan(1e-5);
    const [T, S] = [8, 3000];
    for (let i = 0; i < T * T; i++) f[S + i] = 30 * Math.sin(1.3 * i); // wide range: exp's reduction
    const x = f.slice(S, S + T * T);
    k.softmax(4 * S, T);
    err = 0;
    for (let i = 0; i < T; i++) {
      let mx = -Infinity;
      for (let j = 0; j <= i; j++) mx = Math.max(mx, x[i * T + j]!);
      let s = 0;
      for (let j = 0; j <= i; j++) s += Math.exp(x[i * T + j]! - mx);
      for (let j = 0; j < T; j++) {
        const p = j <= i ? Math.exp(x[i * T + j]! - mx) / s : 0;
        if (j > i) expect(f[S + i * T + j]).toBe(0);
        err = Math.max(err, Math.abs(p - f[S + i * T + j]!));
      }
    }
    expect(err).toBeLessThan(1e-6);
  });

  it("keyBias adds (1 - mask) * -1e9 to the lower triangle's masked columns only", () => {
    const memory = new WebAssembly.Memory({ initial: 1 });
    const k = simdKernels(memory)!;
    const f = new Float32Array(memory.buffer);
    const [Tp, T, S, M] = [8, 6, 0, 100];
    for (let i = 0; i < Tp * Tp; i++) f[S + i] = i;
    const mask = [1, 0, 1, 0.25, 0, 1];
    f.set(mask, M);
    k.keyBias(4 * S, Tp, T, 4 * M);
    for (let i = 0; i < Tp; i++) {
      for (let j = 0; j < Tp; j++) {
        const add = i < T && j <= i ? Math.fround(Math.fround(1 - mask[j]!) * -1e9) : 0;
        expect(f[S + i * Tp + j]).toBe(Math.fround(i * Tp + j + add));
      }
    }
    // Then softmax gives a key masked by 0 exactly 0 (as the stock path's), not a subnormal
    // (e^-87.3 over the row's sum), which the products after it would multiply slowly.
    k.softmax(4 * S, Tp);
    for (let i = 1; i < T; i++) for (const j of [1, 4]) if (j <= i) expect(f[S + i * Tp + j]).toBe(0);
    expect(f[S + 5 * Tp + 5]).toBeGreaterThan(0.9); // row 5: its largest real key takes most
  });
});

describe('SIMD module over a shared memory', () => {
  it("links to a heap like the threaded build's (shared, 4 GiB maximum) and computes there too", () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: THREADED_HEAP_MAX_PAGES, shared: true });
    const k = simdKernels(memory);
    expect(k).not.toBeNull();
    const f = new Float32Array(memory.buffer);
    f.set([1, 2, 3, 4, 5, 6, 7, 8], 0);
    k!.scale(0, 64, 32, 0.5);
    expect([...f.subarray(16, 24)]).toEqual([0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]);
    // An import declared with maximum M accepts any shared memory whose maximum is at most M.
    expect(simdKernels(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }))).not.toBeNull();
  });
});

describe('SIMD causal attention on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [B, T, H, D] of [
    [2, 128, 4, 24], // peftlab-s's layer at the bench's sequence length
    [3, 13, 3, 10], // T and head size both padded to 8
    [1, 1, 2, 8],
    [2, 33, 1, 4],
  ] as const) {
    it(`matches cpu's stock composition: B ${B}, T ${T}, ${H} heads of ${D}`, async () => {
      const C = H * D;
      const [cpu, wasm] = await onBoth((backend) =>
        tf.tidy(() => {
          const qkv = tf.randomNormal([B * T, 3 * C], 0, 2, 'float32', 7) as tf.Tensor2D;
          const w = tf.randomNormal([B * T, C], 0, 1, 'float32', 8);
          const mask = attentionBias(T, 0, B);
          const f = (x: tf.Tensor2D): tf.Tensor =>
            backend === 'wasm'
              ? simdCausalAttention(x, B, T, H)!
              : tf.reshape(packedSelfAttention(x, mask, B, T, H), [B * T, C]);
          const y = f(qkv);
          const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor2D), w)))(qkv);
          return [y.dataSync().slice(), g.dataSync().slice()];
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5);
      expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(1e-4);
    });
  }

  it('leaks no tensor and is off when our wasm kernels are switched off', () => {
    const qkv = tf.randomNormal([16, 24], 0, 1, 'float32', 9) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.grad((x: tf.Tensor) => tf.sum(simdCausalAttention(x as tf.Tensor2D, 2, 8, 2)!))(qkv);
    });
    expect(tf.memory().numTensors).toBe(before);
    setWasmKernels(false);
    try {
      expect(simdCausalAttention(qkv, 2, 8, 2)).toBeNull();
    } finally {
      setWasmKernels(true);
    }
    qkv.dispose();
  });
});

/** A right-padded key mask [B, T]: row b has lens[b] real tokens (1), then padding (0). */
function padMask(lens: readonly number[], T: number, dtype: 'float32' | 'int32' = 'float32'): tf.Tensor2D {
  const m = lens.flatMap((n) => Array.from({ length: T }, (_, t) => (t < n ? 1 : 0)));
  return tf.tensor2d(m, [lens.length, T], dtype);
}

describe('SIMD causal attention under a padding mask on wasm (classification batches)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [B, T, H, D, lens] of [
    [4, 40, 4, 24, [40, 1, 23, 9]], // peftlab-s's heads, one row with a single real token
    [3, 13, 3, 10, [13, 1, 6]], // T and head size padded to 8
    [3, 9, 2, 8, [9, 0, 4]], // a row of padding only: finite, as the stock's -1e9 keeps it
  ] as const) {
    it(`matches cpu's stock composition under attentionBias's mask: B ${B}, T ${T}, ${H} heads of ${D}, lengths ${lens.join(' ')}`, async () => {
      const C = H * D;
      const [cpu, wasm] = await onBoth((backend) =>
        tf.tidy(() => {
          const qkv = tf.randomNormal([B * T, 3 * C], 0, 2, 'float32', 7) as tf.Tensor2D;
          const w = tf.randomNormal([B * T, C], 0, 1, 'float32', 8);
          const keyMask = padMask(lens, T);
          const bias = attentionBias(T, 0, B, keyMask);
          const f = (x: tf.Tensor2D, masked = true): tf.Tensor =>
            backend === 'wasm'
              ? simdCausalAttention(x, B, T, H, masked ? keyMask : undefined)!
              : tf.reshape(packedSelfAttention(x, bias, B, T, H), [B * T, C]);
          const y = f(qkv);
          const g = tf.grad((x: tf.Tensor) => tf.sum(tf.mul(f(x as tf.Tensor2D), w)))(qkv);
          // On wasm, also the kernel with the mask left out: the test must see the difference.
          const unmasked = backend === 'wasm' ? f(qkv, false) : y;
          return [y, g, unmasked].map((t) => t.dataSync().slice());
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5);
      expect(maxDiff(cpu[1]!, wasm[1]!)).toBeLessThan(1e-4);
      expect(maxDiff(cpu[0]!, wasm[2]!)).toBeGreaterThan(1e-2);
    });
  }

  it('runs our kernel for a padded batch, leaks no tensor, and is off when switched off', async () => {
    const qkv = tf.randomNormal([16, 24], 0, 1, 'float32', 9) as tf.Tensor2D;
    const keyMask = padMask([8, 3], 8, 'int32'); // an int mask is cast for the kernel, then freed
    const before = tf.memory().numTensors;
    const profile = await tf.profile(() =>
      tf.tidy(() => {
        tf.grad((x: tf.Tensor) => tf.sum(simdCausalAttention(x as tf.Tensor2D, 2, 8, 2, keyMask)!))(qkv);
      }),
    );
    expect(profile.kernelNames).toContain(ATTENTION_FORWARD);
    expect(profile.kernelNames).not.toContain('Softmax');
    expect(tf.memory().numTensors).toBe(before);
    const misfit = padMask([8, 3, 1], 8); // 3 rows for 2 items: the stock path says what is wrong
    expect(simdCausalAttention(qkv, 2, 8, 2, misfit)).toBeNull();
    misfit.dispose();
    setWasmKernels(false);
    try {
      expect(simdCausalAttention(qkv, 2, 8, 2, keyMask)).toBeNull();
    } finally {
      setWasmKernels(true);
    }
    tf.dispose([qkv, keyMask]);
  });
});

describe('SIMD grouped-query causal attention on wasm (the Llama family)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [B, T, H, KV, D] of [
    [2, 128, 9, 3, 64], // SmolLM2-135M's heads (9 query, 3 key/value, 64 wide)
    [3, 13, 4, 2, 10], // T and head size padded to 8
    [2, 9, 4, 4, 8], // no grouping (multi-head)
    [1, 5, 6, 1, 4], // one key/value head for all (multi-query)
  ] as const) {
    it(`matches cpu's repeat_kv + multi-head attention: B ${B}, T ${T}, ${H} query / ${KV} kv heads of ${D}`, async () => {
      const [cpu, wasm] = await onBoth((backend) =>
        tf.tidy(() => {
          const q = tf.randomNormal([B * T, H * D], 0, 2, 'float32', 1) as tf.Tensor2D;
          const k = tf.randomNormal([B * T, KV * D], 0, 2, 'float32', 2) as tf.Tensor2D;
          const v = tf.randomNormal([B * T, KV * D], 0, 1, 'float32', 3) as tf.Tensor2D;
          const w = tf.randomNormal([B * T, H * D], 0, 1, 'float32', 4);
          const mask = llamaAttentionBias(T, 0, B, null);
          const f = (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor): tf.Tensor => {
            if (backend === 'wasm') {
              return simdCausalAttentionGqa(
                qi as tf.Tensor2D,
                ki as tf.Tensor2D,
                vi as tf.Tensor2D,
                B,
                T,
                H,
                KV,
              )!;
            }
            const r3 = (x: tf.Tensor, c: number): tf.Tensor3D => tf.reshape(x, [B, T, c]);
            const kr = repeatKv(r3(ki, KV * D), KV, H / KV, D);
            const vr = repeatKv(r3(vi, KV * D), KV, H / KV, D);
            return tf.reshape(multiHeadAttention(r3(qi, H * D), kr, vr, mask, H), [B * T, H * D]);
          };
          const y = f(q, k, v);
          const g = tf.grads((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) =>
            tf.sum(tf.mul(f(qi, ki, vi), w)),
          )([q, k, v]);
          return [y, ...g].map((t) => t.dataSync().slice());
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5);
      for (const i of [1, 2, 3]) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(1e-4);
    });
  }

  it('leaks no tensor, refuses shapes that do not group, and is off when switched off', () => {
    const q = tf.randomNormal([16, 32], 0, 1, 'float32', 9) as tf.Tensor2D;
    const kv = tf.randomNormal([16, 16], 0, 1, 'float32', 10) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        tf.sum(simdCausalAttentionGqa(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, 2, 8, 4, 2)!),
      )([q, kv, kv]);
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(simdCausalAttentionGqa(q, kv, kv, 2, 8, 4, 3)).toBeNull(); // 4 query heads do not share 3
    setWasmKernels(false);
    try {
      expect(simdCausalAttentionGqa(q, kv, kv, 2, 8, 4, 2)).toBeNull();
    } finally {
      setWasmKernels(true);
    }
    tf.dispose([q, kv]);
  });
});

describe('SIMD grouped-query causal attention under a padding mask on wasm', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [B, T, H, KV, D, lens, dtype] of [
    [3, 20, 6, 2, 8, [20, 1, 11], 'float32'], // 3 query heads per key/value head
    [3, 13, 4, 4, 10, [1, 13, 7], 'int32'], // no grouping; T and head size padded; an int mask
    [2, 9, 3, 1, 16, [4, 9], 'float32'], // multi-query
  ] as const) {
    it(`matches cpu's repeat_kv + multi-head attention under llamaAttentionBias's mask: B ${B}, T ${T}, ${H} query / ${KV} kv heads of ${D}, lengths ${lens.join(' ')}`, async () => {
      const [cpu, wasm] = await onBoth((backend) =>
        tf.tidy(() => {
          const q = tf.randomNormal([B * T, H * D], 0, 2, 'float32', 1) as tf.Tensor2D;
          const k = tf.randomNormal([B * T, KV * D], 0, 2, 'float32', 2) as tf.Tensor2D;
          const v = tf.randomNormal([B * T, KV * D], 0, 1, 'float32', 3) as tf.Tensor2D;
          const w = tf.randomNormal([B * T, H * D], 0, 1, 'float32', 4);
          const keyMask = padMask(lens, T, dtype);
          const bias = llamaAttentionBias(T, 0, B, null, keyMask);
          const f = (qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor, masked = true): tf.Tensor => {
            if (backend === 'wasm') {
              const m = masked ? keyMask : undefined;
              const [a, b, c] = [qi as tf.Tensor2D, ki as tf.Tensor2D, vi as tf.Tensor2D];
              return simdCausalAttentionGqa(a, b, c, B, T, H, KV, m)!;
            }
            const r3 = (x: tf.Tensor, c: number): tf.Tensor3D => tf.reshape(x, [B, T, c]);
            const kr = repeatKv(r3(ki, KV * D), KV, H / KV, D);
            const vr = repeatKv(r3(vi, KV * D), KV, H / KV, D);
            return tf.reshape(multiHeadAttention(r3(qi, H * D), kr, vr, bias, H), [B * T, H * D]);
          };
          const y = f(q, k, v);
          const g = tf.grads((qi: tf.Tensor, ki: tf.Tensor, vi: tf.Tensor) =>
            tf.sum(tf.mul(f(qi, ki, vi), w)),
          )([q, k, v]);
          const unmasked = backend === 'wasm' ? f(q, k, v, false) : y;
          return [y, ...g, unmasked].map((t) => t.dataSync().slice());
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5);
      for (const i of [1, 2, 3]) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(1e-4);
      expect(maxDiff(cpu[0]!, wasm[4]!)).toBeGreaterThan(1e-2);
    });
  }

  it('runs our kernel for a padded batch and leaks no tensor', async () => {
    const q = tf.randomNormal([16, 32], 0, 1, 'float32', 9) as tf.Tensor2D;
    const kv = tf.randomNormal([16, 16], 0, 1, 'float32', 10) as tf.Tensor2D;
    const keyMask = padMask([2, 8], 8);
    const before = tf.memory().numTensors;
    const profile = await tf.profile(() =>
      tf.tidy(() => {
        tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.sum(
            simdCausalAttentionGqa(
              a as tf.Tensor2D,
              b as tf.Tensor2D,
              c as tf.Tensor2D,
              2,
              8,
              4,
              2,
              keyMask,
            )!,
          ),
        )([q, kv, kv]);
      }),
    );
    expect(profile.kernelNames).toContain(GQA_FORWARD);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([q, kv, keyMask]);
  });
});

/**
 * Past keys (prefix tuning, P-tuning v2): P positions of k, v [B, heads, P, D] before the T new
 * ones, with a key mask [B, P + T] (ones over the past, as classification extends it) or none.
 */
function pastMask(B: number, P: number, lens: readonly number[] | null, T: number): tf.Tensor2D | undefined {
  if (!lens) return undefined;
  return tf.concat([tf.ones([B, P]), padMask(lens, T)], 1) as tf.Tensor2D;
}

describe('SIMD causal attention with past keys on wasm (prefix tuning)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [B, T, H, D, P, lens] of [
    [2, 40, 4, 24, 5, null], // peftlab-s's heads
    [3, 13, 3, 10, 5, [13, 1, 6]], // padded rows; S = 18 and head size padded to 8
    [2, 9, 2, 8, 1, [9, 4]],
    [2, 1, 2, 8, 1, null], // one new position (a decoding step) after one past
    [2, 6, 2, 8, 6, [6, 2]], // P = T: S = 12
    [2, 4, 2, 8, 7, [4, 2]], // P = 7 > T = 4, within 2T: still ours
    [1, 1, 3, 8, 2, null], // a decoding step after 2 positions (P = 2T)
  ] as const) {
    it(`matches cpu's stock composition (merge, concat, attentionBias): B ${B}, T ${T}, P ${P}, ${H} heads of ${D}${lens ? `, lengths ${lens.join(' ')}` : ''}`, async () => {
      const C = H * D;
      const [cpu, wasm] = await onBoth((backend) =>
        tf.tidy(() => {
          const qkv = tf.randomNormal([B * T, 3 * C], 0, 2, 'float32', 7) as tf.Tensor2D;
          const pk = tf.randomNormal([B, H, P, D], 0, 2, 'float32', 11) as tf.Tensor4D;
          const pv = tf.randomNormal([B, H, P, D], 0, 1, 'float32', 12) as tf.Tensor4D;
          const w = tf.randomNormal([B * T, C], 0, 1, 'float32', 8);
          const keyMask = pastMask(B, P, lens, T);
          const bias = attentionBias(T, P, B, keyMask);
          const merge = (t: tf.Tensor): tf.Tensor3D => tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, P, C]);
          const f = (x: tf.Tensor, k: tf.Tensor, v: tf.Tensor): tf.Tensor => {
            if (backend === 'wasm') {
              const past = { k: k as tf.Tensor4D, v: v as tf.Tensor4D };
              return simdCausalAttention(x as tf.Tensor2D, B, T, H, keyMask, past)!;
            }
            const [q, kn, vn] = [0, 1, 2].map((i) =>
              tf.reshape(tf.slice(x, [0, i * C], [B * T, C]), [B, T, C]),
            );
            const kAll = tf.concat([merge(k), kn!], 1) as tf.Tensor3D;
            const vAll = tf.concat([merge(v), vn!], 1) as tf.Tensor3D;
            return tf.reshape(multiHeadAttention(q as tf.Tensor3D, kAll, vAll, bias, H), [B * T, C]);
          };
          const y = f(qkv, pk, pv);
          const g = tf.grads((x: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(f(x, k, v), w)))([
            qkv,
            pk,
            pv,
          ]);
          // On wasm, also the kernel with no past: the test must see the difference.
          const noPast =
            backend === 'wasm' ? simdCausalAttention(qkv, B, T, H, lens ? padMask(lens, T) : undefined)! : y;
          return [y, ...g, noPast].map((t) => t.dataSync().slice());
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5);
      for (const i of [1, 2, 3]) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(1e-4);
      expect(maxDiff(cpu[0]!, wasm[4]!)).toBeGreaterThan(1e-2);
    });
  }

  it('runs our kernel, leaks no tensor, and leaves P > 2T (a decoding step) and misfits to the stock path', async () => {
    const qkv = tf.randomNormal([16, 24], 0, 1, 'float32', 9) as tf.Tensor2D;
    const pk = tf.randomNormal([2, 2, 3, 4], 0, 1, 'float32', 10) as tf.Tensor4D;
    const keyMask = tf.concat([tf.ones([2, 3], 'int32'), padMask([8, 3], 8, 'int32')], 1) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    const profile = await tf.profile(() =>
      tf.tidy(() => {
        tf.grads((x: tf.Tensor, k: tf.Tensor, v: tf.Tensor) =>
          tf.sum(
            simdCausalAttention(x as tf.Tensor2D, 2, 8, 2, keyMask, {
              k: k as tf.Tensor4D,
              v: v as tf.Tensor4D,
            })!,
          ),
        )([qkv, pk, pk]);
      }),
    );
    expect(profile.kernelNames).toContain(ATTENTION_FORWARD);
    expect(profile.kernelNames).toContain(ATTENTION_BACKWARD);
    expect(profile.kernelNames).not.toContain('Softmax');
    expect(tf.memory().numTensors).toBe(before);
    const one = tf.slice(qkv, [0, 0], [2, 24]) as tf.Tensor2D; // T = 1 after P = 3
    expect(simdCausalAttention(one, 2, 1, 2, undefined, { k: pk, v: pk })).toBeNull();
    expect(simdCausalAttention(qkv, 2, 8, 2, padMask([8, 3], 8), { k: pk, v: pk })).toBeNull(); // mask of T only
    setWasmKernels(false);
    try {
      expect(simdCausalAttention(qkv, 2, 8, 2, keyMask, { k: pk, v: pk })).toBeNull();
    } finally {
      setWasmKernels(true);
    }
    tf.dispose([qkv, pk, keyMask, one]);
  });
});

describe('SIMD grouped-query causal attention with past keys on wasm (prefix tuning, the Llama family)', () => {
  beforeAll(async () => {
    await initNodeBackend('wasm');
  });

  for (const [B, T, H, KV, D, P, lens] of [
    [2, 20, 6, 2, 8, 5, null], // 3 query heads per key/value head
    [3, 13, 4, 4, 10, 5, [13, 1, 7]], // no grouping; padded rows; S and head size padded
    [2, 9, 3, 1, 16, 1, [4, 9]], // multi-query
    [2, 1, 4, 2, 8, 2, null], // a decoding step (P = 2T)
  ] as const) {
    it(`matches cpu's merge, concat, repeat_kv + multi-head attention: B ${B}, T ${T}, P ${P}, ${H} query / ${KV} kv heads of ${D}${lens ? `, lengths ${lens.join(' ')}` : ''}`, async () => {
      const [cpu, wasm] = await onBoth((backend) =>
        tf.tidy(() => {
          const q = tf.randomNormal([B * T, H * D], 0, 2, 'float32', 1) as tf.Tensor2D;
          const k = tf.randomNormal([B * T, KV * D], 0, 2, 'float32', 2) as tf.Tensor2D;
          const v = tf.randomNormal([B * T, KV * D], 0, 1, 'float32', 3) as tf.Tensor2D;
          const pk = tf.randomNormal([B, KV, P, D], 0, 2, 'float32', 5) as tf.Tensor4D;
          const pv = tf.randomNormal([B, KV, P, D], 0, 1, 'float32', 6) as tf.Tensor4D;
          const w = tf.randomNormal([B * T, H * D], 0, 1, 'float32', 4);
          const keyMask = pastMask(B, P, lens, T);
          const bias = llamaAttentionBias(T, P, B, null, keyMask);
          const merge = (t: tf.Tensor): tf.Tensor3D =>
            tf.reshape(tf.transpose(t, [0, 2, 1, 3]), [B, P, KV * D]);
          const f = (
            qi: tf.Tensor,
            ki: tf.Tensor,
            vi: tf.Tensor,
            pki: tf.Tensor,
            pvi: tf.Tensor,
          ): tf.Tensor => {
            if (backend === 'wasm') {
              const [a, b, c] = [qi as tf.Tensor2D, ki as tf.Tensor2D, vi as tf.Tensor2D];
              const past = { k: pki as tf.Tensor4D, v: pvi as tf.Tensor4D };
              return simdCausalAttentionGqa(a, b, c, B, T, H, KV, keyMask, past)!;
            }
            const r3 = (x: tf.Tensor, c: number): tf.Tensor3D => tf.reshape(x, [B, T, c]);
            const kAll = tf.concat([merge(pki), r3(ki, KV * D)], 1) as tf.Tensor3D;
            const vAll = tf.concat([merge(pvi), r3(vi, KV * D)], 1) as tf.Tensor3D;
            const kr = repeatKv(kAll, KV, H / KV, D);
            const vr = repeatKv(vAll, KV, H / KV, D);
            return tf.reshape(multiHeadAttention(r3(qi, H * D), kr, vr, bias, H), [B * T, H * D]);
          };
          const y = f(q, k, v, pk, pv);
          const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor, d: tf.Tensor, e: tf.Tensor) =>
            tf.sum(tf.mul(f(a, b, c, d, e), w)),
          )([q, k, v, pk, pv]);
          return [y, ...g].map((t) => t.dataSync().slice());
        }),
      );
      expect(maxDiff(cpu[0]!, wasm[0]!)).toBeLessThan(2e-5);
      for (const i of [1, 2, 3, 4, 5]) expect(maxDiff(cpu[i]!, wasm[i]!)).toBeLessThan(1e-4);
      // The past's gradients are not zero: the kernel reads the past and trains it.
      for (const i of [4, 5]) expect(Math.max(...wasm[i]!.map(Math.abs))).toBeGreaterThan(1e-2);
    });
  }
});
