import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  causalAttention,
  causalAttentionPacked,
  causalAttentionPackedPast,
  causalAttentionPackedPastStock,
  causalAttentionPackedStock,
  causalAttentionStock,
  gqaCausalAttention,
  gqaCausalAttentionStock,
} from './attention';
import { countDispatches } from './dispatch-counter';
import { maxRelError, onBackend, randomValues, webgpuForTests, weightedSum } from './testing';

const gpu = await webgpuForTests();
const [b, h, t, d] = [2, 2, 7, 8];
const scale = 1 / Math.sqrt(d);

function inputs(): tf.Tensor4D[] {
  // Scaled up so the softmax is far from uniform and the max subtraction matters.
  return [31, 32, 33].map(
    (s) => tf.mul(tf.tensor4d(randomValues(b * h * t * d, s), [b, h, t, d]), 2) as tf.Tensor4D,
  );
}

describe.skipIf(!gpu)('causalAttention on webgpu', () => {
  it('matches softmax(q k^T scale + causal mask) v on cpu: output, dq, dk, dv', async () => {
    const run = (f: typeof causalAttention) => () => {
      const [q, k, v] = inputs();
      const g = tf.grads((qi, ki, vi) =>
        weightedSum(f(qi as tf.Tensor4D, ki as tf.Tensor4D, vi as tf.Tensor4D, scale), 8),
      );
      return [f(q!, k!, v!, scale), ...g([q!, k!, v!])];
    };
    const want = await onBackend('cpu', run(causalAttentionStock));
    const got = await onBackend('webgpu', run(causalAttention));
    ['o', 'dq', 'dk', 'dv'].forEach((name, i) =>
      expect(maxRelError(got[i]!, want[i]!), name).toBeLessThan(1e-4),
    );
  });

  it('is causal: changing the last key and value leaves earlier outputs unchanged', async () => {
    const [o1, o2] = await onBackend('webgpu', () => {
      const [q, k, v] = inputs();
      const bump = tf.concat([tf.zeros([b, h, t - 1, d]), tf.ones([b, h, 1, d])], 2);
      return [
        causalAttention(q!, k!, v!, scale),
        causalAttention(q!, tf.add(k!, bump) as tf.Tensor4D, tf.add(v!, bump) as tf.Tensor4D, scale),
      ];
    });
    for (let r = 0; r < b * h; r++)
      for (let i = 0; i < t; i++)
        for (let c = 0; c < d; c++) {
          const at = (r * t + i) * d + c;
          if (i < t - 1) expect(o2![at]).toBe(o1![at]);
        }
    expect(maxRelError(o1!, o2!)).toBeGreaterThan(1e-3); // the last query row does see the change
  });

  it('takes 2 dispatches forward and 3 backward, fewer than stock', async () => {
    await tf.setBackend('webgpu');
    const [q, k, v] = inputs();
    const count = async (fn: () => tf.Tensor | tf.Tensor[]) => {
      const { result, counts } = await countDispatches(fn);
      tf.dispose(result);
      return counts.dispatches;
    };
    expect(await count(() => causalAttention(q!, k!, v!, scale))).toBe(2);
    const stockFwd = await count(() => causalAttentionStock(q!, k!, v!, scale));
    const grads = (f: typeof causalAttention) => () =>
      tf.grads((qi, ki, vi) => f(qi as tf.Tensor4D, ki as tf.Tensor4D, vi as tf.Tensor4D, scale))([
        q!,
        k!,
        v!,
      ]);
    const ours = await count(grads(causalAttention));
    const stock = await count(grads(causalAttentionStock));
    expect(ours).toBe(5);
    expect(ours).toBeLessThan(stock);
    console.log(
      `causalAttention dispatches: forward ${stockFwd} stock vs 2 ours; forward+backward ${stock} stock vs ${ours} ours`,
    );
    tf.dispose([q!, k!, v!]);
  });
});

describe.skipIf(!gpu)('causalAttentionPacked on webgpu (qkv [B, T, 3C] -> y [B, T, C])', () => {
  const heads = 3;
  const hd = 4;
  const C = heads * hd;
  const sc = 1 / Math.sqrt(hd);
  const packed = () => tf.mul(tf.tensor3d(randomValues(b * t * 3 * C, 41), [b, t, 3 * C]), 2) as tf.Tensor3D;

  it('matches the stock split, attention and merge on cpu: output and dqkv', async () => {
    const run = (f: typeof causalAttentionPacked) => () => {
      const qkv = packed();
      const g = tf.grad((x) => weightedSum(f(x as tf.Tensor3D, heads, sc), 9));
      return [f(qkv, heads, sc), g(qkv)];
    };
    const want = await onBackend('cpu', run(causalAttentionPackedStock));
    const got = await onBackend('webgpu', run(causalAttentionPacked));
    expect(maxRelError(got[0]!, want[0]!), 'y').toBeLessThan(1e-4);
    expect(maxRelError(got[1]!, want[1]!), 'dqkv').toBeLessThan(1e-4);
  });

  it('agrees with the [B, H, T, D] kernel on the same q, k, v', async () => {
    const [a, c] = await onBackend('webgpu', () => {
      const qkv = packed();
      const split = tf.transpose(tf.reshape(qkv, [b, t, 3, heads, hd]), [2, 0, 3, 1, 4]);
      const [q, k, v] = tf.unstack(split, 0) as tf.Tensor4D[];
      const y = tf.reshape(tf.transpose(causalAttention(q!, k!, v!, sc), [0, 2, 1, 3]), [b, t, C]);
      return [causalAttentionPacked(qkv, heads, sc), y];
    });
    expect(maxRelError(a!, c!)).toBeLessThan(1e-6);
  });

  it('takes 2 dispatches forward and 1 backward', async () => {
    await tf.setBackend('webgpu');
    const qkv = packed();
    const fwd = await countDispatches(() => causalAttentionPacked(qkv, heads, sc));
    tf.dispose(fwd.result);
    expect(fwd.counts.dispatches).toBe(2);
    const both = await countDispatches(() =>
      tf.grad((x) => causalAttentionPacked(x as tf.Tensor3D, heads, sc))(qkv),
    );
    tf.dispose(both.result);
    // 2 forward and 1 for dqkv (tf.grad's seed of ones is uploaded, not dispatched).
    expect(both.counts.dispatches).toBe(3);
    qkv.dispose();
  });
});

/**
 * Key masks [B, T] for the masked variants: a full row, a row with one real token, and a row with
 * left padding and a hole, whose first query rows see only padded keys (the stock softmax makes
 * them uniform, finite) and whose real rows see padded keys among real ones.
 */
function keyMask(B: number, T: number): tf.Tensor2D {
  const rows = [
    Array.from({ length: T }, () => 1),
    Array.from({ length: T }, (_, j) => (j < 1 ? 1 : 0)),
    Array.from({ length: T }, (_, j) => (j < 2 || j === 4 ? 0 : 1)),
  ];
  return tf.tensor2d(rows.slice(0, B).flat(), [B, T]);
}

describe.skipIf(!gpu)('masked causal attention on webgpu (padded keys get the stock bias)', () => {
  const heads = 2;
  const hd = 4;
  const C = heads * hd;
  const B = 3;
  const sc = 1 / Math.sqrt(hd);
  const packed = () => tf.mul(tf.tensor3d(randomValues(B * t * 3 * C, 43), [B, t, 3 * C]), 2) as tf.Tensor3D;

  it('packed: output and dqkv match the stock composition on cpu, and differ from unmasked', async () => {
    const run = (f: typeof causalAttentionPacked, masked: boolean) => () => {
      const qkv = packed();
      const m = masked ? keyMask(B, t) : undefined;
      const g = tf.grad((x) => weightedSum(f(x as tf.Tensor3D, heads, sc, m), 9));
      return [f(qkv, heads, sc, m), g(qkv)];
    };
    const want = await onBackend('cpu', run(causalAttentionPackedStock, true));
    const got = await onBackend('webgpu', run(causalAttentionPacked, true));
    expect(maxRelError(got[0]!, want[0]!), 'y').toBeLessThan(1e-4);
    expect(maxRelError(got[1]!, want[1]!), 'dqkv').toBeLessThan(1e-4);
    expect(got.every((a) => a.every(Number.isFinite))).toBe(true);
    // The mask matters here: without it the outputs and gradients are far from these.
    const unmasked = await onBackend('cpu', run(causalAttentionPackedStock, false));
    expect(maxRelError(unmasked[0]!, want[0]!)).toBeGreaterThan(1e-2);
    expect(maxRelError(unmasked[1]!, want[1]!)).toBeGreaterThan(1e-2);
  });

  it('[B, H, T, D]: output, dq, dk, dv match the stock composition on cpu', async () => {
    const run = (f: typeof causalAttention) => () => {
      const [q, k, v] = [51, 52, 53].map(
        (s) => tf.mul(tf.tensor4d(randomValues(B * heads * t * hd, s), [B, heads, t, hd]), 2) as tf.Tensor4D,
      );
      const m = keyMask(B, t);
      const g = tf.grads((qi, ki, vi) =>
        weightedSum(f(qi as tf.Tensor4D, ki as tf.Tensor4D, vi as tf.Tensor4D, sc, m), 8),
      );
      return [f(q!, k!, v!, sc, m), ...g([q!, k!, v!])];
    };
    const want = await onBackend('cpu', run(causalAttentionStock));
    const got = await onBackend('webgpu', run(causalAttention));
    ['o', 'dq', 'dk', 'dv'].forEach((name, i) =>
      expect(maxRelError(got[i]!, want[i]!), name).toBeLessThan(1e-4),
    );
  });
});

describe.skipIf(!gpu)('grouped-query causal attention on webgpu (q [B, T, H D], k, v [B, T, KV D])', () => {
  const hd = 4;
  const B = 3;
  const T = 5;
  const sc = 1 / Math.sqrt(hd);
  const cases = [
    { H: 3, KV: 1, masked: false },
    { H: 3, KV: 1, masked: true },
    { H: 2, KV: 2, masked: false },
    { H: 2, KV: 2, masked: true },
  ];
  const qkv = (H: number, KV: number): tf.Tensor3D[] =>
    [
      [61, H],
      [62, KV],
      [63, KV],
    ].map(
      ([s, n]) => tf.mul(tf.tensor3d(randomValues(B * T * n! * hd, s!), [B, T, n! * hd]), 2) as tf.Tensor3D,
    );

  for (const { H, KV, masked } of cases) {
    it(`H ${H}, KV ${KV}${masked ? ', masked' : ''}: output, dq, dk, dv match repeat_kv and the stock composition on cpu`, async () => {
      const run = (f: typeof gqaCausalAttention) => () => {
        const [q, k, v] = qkv(H, KV);
        const m = masked ? keyMask(B, T) : undefined;
        const g = tf.grads((qi, ki, vi) =>
          weightedSum(f(qi as tf.Tensor3D, ki as tf.Tensor3D, vi as tf.Tensor3D, H, sc, m), 7),
        );
        return [f(q!, k!, v!, H, sc, m), ...g([q!, k!, v!])];
      };
      const want = await onBackend('cpu', run(gqaCausalAttentionStock));
      const got = await onBackend('webgpu', run(gqaCausalAttention));
      ['o', 'dq', 'dk', 'dv'].forEach((name, i) =>
        expect(maxRelError(got[i]!, want[i]!), name).toBeLessThan(1e-4),
      );
    });
  }

  it('takes 2 dispatches forward and 3 backward, no repeat_kv', async () => {
    await tf.setBackend('webgpu');
    const [q, k, v] = qkv(3, 1);
    const m = keyMask(B, T);
    const fwd = await countDispatches(() => gqaCausalAttention(q!, k!, v!, 3, sc, m));
    tf.dispose(fwd.result);
    expect(fwd.counts.dispatches).toBe(2);
    const grads = (f: typeof gqaCausalAttention) => () =>
      tf.grads((qi, ki, vi) => f(qi as tf.Tensor3D, ki as tf.Tensor3D, vi as tf.Tensor3D, 3, sc, m))([
        q!,
        k!,
        v!,
      ]);
    const ours = await countDispatches(grads(gqaCausalAttention));
    const stock = await countDispatches(grads(gqaCausalAttentionStock));
    tf.dispose([ours.result, stock.result]);
    expect(ours.counts.dispatches).toBe(5);
    console.log(
      `gqaCausalAttention dispatches (masked, forward+backward): ${stock.counts.dispatches} stock vs ${ours.counts.dispatches} ours`,
    );
    tf.dispose([q!, k!, v!, m]);
  });
});

describe.skipIf(!gpu)('packed causal attention after past keys on webgpu (prefix tuning)', () => {
  const heads = 2;
  const hd = 4;
  const C = heads * hd;
  const B = 3;
  const sc = 1 / Math.sqrt(hd);
  /**
   * Masks [B, P + T]: ones over the past (prefix tokens are real), then a full row, a row with one
   * real token, and a row with a left pad and a hole (rows of different lengths).
   */
  const pastMask = (P: number, T: number): tf.Tensor2D => {
    const cur = [
      Array.from({ length: T }, () => 1),
      Array.from({ length: T }, (_, j) => (j < 1 ? 1 : 0)),
      Array.from({ length: T }, (_, j) => (j === 0 || j === 3 ? 0 : 1)),
    ];
    return tf.tensor2d(
      cur.flatMap((r) => [...Array.from({ length: P }, () => 1), ...r]),
      [B, P + T],
    );
  };
  const make = (P: number, T: number): [tf.Tensor3D, tf.Tensor4D, tf.Tensor4D] => [
    tf.mul(tf.tensor3d(randomValues(B * T * 3 * C, 81), [B, T, 3 * C]), 2) as tf.Tensor3D,
    tf.mul(tf.tensor4d(randomValues(B * heads * P * hd, 82), [B, heads, P, hd]), 2) as tf.Tensor4D,
    tf.mul(tf.tensor4d(randomValues(B * heads * P * hd, 83), [B, heads, P, hd]), 2) as tf.Tensor4D,
  ];
  const cases = [
    { P: 1, T: 1, masked: false },
    { P: 3, T: 5, masked: false },
    { P: 1, T: 5, masked: true },
    { P: 3, T: 1, masked: true },
  ];
  for (const { P, T, masked } of cases) {
    it(`P ${P}, T ${T}${masked ? ', padding mask' : ''}: output, dqkv, dpastK, dpastV match concat + bias + softmax on cpu`, async () => {
      const run = (f: typeof causalAttentionPackedPast) => () => {
        const [qkv, pk, pv] = make(P, T);
        const m = masked ? pastMask(P, T) : undefined;
        const g = tf.grads((x, k, v) =>
          weightedSum(f(x as tf.Tensor3D, k as tf.Tensor4D, v as tf.Tensor4D, heads, sc, m), 9),
        );
        return [f(qkv, pk, pv, heads, sc, m), ...g([qkv, pk, pv])];
      };
      const want = await onBackend('cpu', run(causalAttentionPackedPastStock));
      const got = await onBackend('webgpu', run(causalAttentionPackedPast));
      ['y', 'dqkv', 'dpastK', 'dpastV'].forEach((name, i) =>
        expect(maxRelError(got[i]!, want[i]!), name).toBeLessThan(1e-4),
      );
      expect(got.every((a) => a.every(Number.isFinite))).toBe(true);
    });
  }

  it('reads the past: its output differs from the no-past kernel on the same qkv, and the mask matters', async () => {
    const [P, T] = [3, 5];
    const [withPast, noPast, unmasked] = await onBackend('webgpu', () => {
      const [qkv, pk, pv] = make(P, T);
      return [
        causalAttentionPackedPast(qkv, pk, pv, heads, sc, pastMask(P, T)),
        causalAttentionPacked(qkv, heads, sc, tf.slice(pastMask(P, T), [0, P], [B, T])),
        causalAttentionPackedPast(qkv, pk, pv, heads, sc),
      ];
    });
    expect(maxRelError(withPast!, noPast!)).toBeGreaterThan(1e-2);
    expect(maxRelError(withPast!, unmasked!)).toBeGreaterThan(1e-2);
  });

  it('takes 2 dispatches forward and 3 backward (dqkv, dpastK, dpastV), fewer than stock', async () => {
    await tf.setBackend('webgpu');
    const [qkv, pk, pv] = make(3, 5);
    const m = pastMask(3, 5);
    const grads = (f: typeof causalAttentionPackedPast) => () =>
      tf.grads((x, k, v) => f(x as tf.Tensor3D, k as tf.Tensor4D, v as tf.Tensor4D, heads, sc, m))([
        qkv,
        pk,
        pv,
      ]);
    const ours = await countDispatches(grads(causalAttentionPackedPast));
    const stock = await countDispatches(grads(causalAttentionPackedPastStock));
    tf.dispose([ours.result, stock.result]);
    expect(ours.counts.dispatches).toBe(5);
    expect(ours.counts.dispatches).toBeLessThan(stock.counts.dispatches);
    console.log(
      `causalAttentionPackedPast dispatches (masked, forward+backward): ${stock.counts.dispatches} stock vs ${ours.counts.dispatches} ours`,
    );
    tf.dispose([qkv, pk, pv, m]);
  });
});
