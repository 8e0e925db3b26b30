import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import {
  causalAttention,
  causalAttentionPacked,
  causalAttentionPackedStock,
  causalAttentionStock,
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
