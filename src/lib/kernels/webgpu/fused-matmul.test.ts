import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { describe, expect, it } from 'vitest';
import { fusedMatMul, MATMUL_TILES, pickTile, type MatMulTileName } from './program';
import { maxRelError, onBackend, randomValues, webgpuForTests } from './testing';

const gpu = await webgpuForTests();

/** A stored matrix for op(x) of shape [r, c]: stored [c, r] when read transposed. */
function stored(r: number, c: number, transpose: boolean, seed: number): tf.Tensor2D {
  return tf.tensor2d(randomValues(r * c, seed), transpose ? [c, r] : [r, c]);
}

interface Case {
  M: number;
  N: number;
  K1: number;
  K2?: number;
  ta: boolean;
  tb: boolean;
  bias: boolean;
}

/** The stock composition of what fusedMatMul computes, on whichever backend is active. */
function stock(c: Case): tf.Tensor {
  const a1 = stored(c.M, c.K1, c.ta, 1);
  const b1 = stored(c.K1, c.N, c.tb, 2);
  let y = tf.mul(tf.matMul(a1, b1, c.ta, c.tb), 0.5);
  if (c.K2) {
    const a2 = stored(c.M, c.K2, !c.ta, 3);
    const b2 = stored(c.K2, c.N, !c.tb, 4);
    y = tf.add(y, tf.mul(tf.matMul(a2, b2, !c.ta, !c.tb), -1.5));
  }
  if (c.bias) y = tf.add(y, tf.tensor1d(randomValues(c.N, 5)));
  return y;
}

function ours(c: Case, tile: MatMulTileName): tf.Tensor {
  const backend = tf.backend() as WebGPUBackend;
  const info = fusedMatMul(backend, {
    a1: { t: stored(c.M, c.K1, c.ta, 1), transpose: c.ta },
    b1: { t: stored(c.K1, c.N, c.tb, 2), transpose: c.tb },
    alpha1: 0.5,
    second: c.K2
      ? {
          a2: { t: stored(c.M, c.K2, !c.ta, 3), transpose: !c.ta },
          b2: { t: stored(c.K2, c.N, !c.tb, 4), transpose: !c.tb },
          alpha2: -1.5,
        }
      : undefined,
    bias: c.bias ? tf.tensor1d(randomValues(c.N, 5)) : undefined,
    tile,
  });
  return tf.engine().makeTensorFromTensorInfo(info);
}

describe.skipIf(!gpu)('fusedMatMul on webgpu', () => {
  // Sizes off every tile's multiples (and K off bk), so each bounds check and the padding run.
  const cases: Case[] = [
    { M: 37, N: 45, K1: 51, ta: false, tb: false, bias: false },
    { M: 37, N: 45, K1: 51, K2: 6, ta: true, tb: false, bias: true },
    { M: 70, N: 9, K1: 33, K2: 5, ta: false, tb: true, bias: true },
    { M: 6, N: 70, K1: 40, ta: true, tb: true, bias: false },
  ];
  for (const tile of Object.keys(MATMUL_TILES) as MatMulTileName[]) {
    it(`matches the stock composition on cpu with the ${tile} tile, every transpose`, async () => {
      for (const c of cases) {
        const want = await onBackend('cpu', () => [stock(c)]);
        const got = await onBackend('webgpu', () => [ours(c, tile)]);
        expect(maxRelError(got[0]!, want[0]!), JSON.stringify(c)).toBeLessThan(1e-4);
      }
    });
  }

  it('picks a narrow tile for rank-r outputs and a square one otherwise', () => {
    expect(pickTile(1024, 8)).toBe('tallThin');
    expect(pickTile(8, 768)).toBe('shortWide');
    expect(pickTile(64, 64)).toBe('square');
    expect(pickTile(1024, 2304)).toBe('wide');
  });
});
