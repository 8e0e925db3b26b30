/**
 * Hand-written WebAssembly SIMD (f32x4) kernels, emitted as bytes (emit.ts) and instantiated over
 * tfjs-backend-wasm's own memory, so they read and write tensors in place (no copies in or out).
 * All pointers and strides are in bytes.
 *
 * Why: causal attention on wasm ran as stock kernels around N small XNNPACK products (ops.ts,
 * packedSelfAttention): full [T, T] score products whose upper triangle is masked away, a fresh
 * XNNPACK operator per item, and score-sized transposes, masks, softmax and its gradient as
 * separate passes. These kernels do only the lower triangle and keep each head's working set
 * (about 100 KB at T 128) in cache; attention.ts composes them.
 *
 *   gemm      C[m, n] = alpha sum_k A(m, k) B[k, n] (+ bias[n]): A read as scalars with any strides
 *             (so A^T costs nothing), B and C rows contiguous; register tile 4 rows x 8 columns (8 f32x4
 *             accumulators), each step a mul and an add, or where the engine has relaxed SIMD one
 *             relaxed_madd (an FMA on x86-64 with FMA3 and on ARM64: about 1.4x the mul + add gemm's
 *             rate here, 38-45 GFLOP/s against 26-30). M % 4 == 0, N % 8 == 0. Causal ranges per 4-row tile:
 *             kmode 1: k < m0 + 4 (A is zero above its diagonal: P V, dS K);
 *             kmode 2: k >= m0   (A^T of a lower-triangular matrix: dS^T Q, P^T dY);
 *             nmode 1: n < ceil8(m0 + 4), the rest of the tile's rows written as zeros (Q K^T).
 *   softmax   causal softmax of each row i of S [T, T] in place: columns > i get exactly 0.
 *             exp is Cephes' expf (S. L. Moshier, Cephes Math Library, expf.c): n = round(x log2 e),
 *             r = x - n ln 2 (two-part ln 2), e^r by a degree-5 polynomial, times 2^n built in the
 *             exponent bits; relative error about 1e-7 on [-87.3, 0], exactly 0 below (no subnormals).
 *   keyBias   a padding mask's additive bias on S before softmax: column j of rows i >= j gets
 *             (1 - mask[j]) MASKED, as gpt2.ts's attentionBias adds it (scalar loops over the masked
 *             columns only: a handful per row of a classification batch).
 *   dsoftmax  dS = P * (dP - sum_j P dP) per row in place in dP (softmax's Jacobian-vector product).
 *   copy      dst = scale * src over rows x cols with any element strides (gathers a head's q, k, v
 *             out of c_attn's [B*T, 3C], transposes, scatters gradients back).
 *   copyRows  copy's contiguous case (rows of a multiple of 4 floats) in vectors.
 *   scale     dst = s * src (cross-entropy's gradient pass, cross-entropy.ts).
 *   addTo     dst += src (grouped-query attention sums a key/value head's gradient over its query heads).
 *   gelu      gelu_new forward (y and the sigmoid s) and gradient, one pass each (elementwise.ts),
 *   geluGrad  with the sigmoid from the same expf: 1 / (1 + e^-z).
 *   normForward, normBackward   LayerNorm and RMSNorm (norms.ts gives the formulas), rows of C % 4 == 0.
 *   adamw     one AdamW update (train/adamw.ts's formula, the same f32 operations in the same order):
 *             m and v in place, the new parameter into another tensor (adamw.ts says why).
 */
import { Body, emitModule, F32, I32, V128 } from './emit';

/**
 * The gemm above, or with `panels` its plain case (kmode = nmode = 0) with the loops swapped: column
 * panels of 8 outside, row tiles of 4 inside, so one panel of B (K x 8 floats, 32 KB at K 1024)
 * stays in cache for every row tile, and A (which must then fit in cache) is read again per panel.
 * Rows outside stream all of B once per 4 rows of C: a weight gradient x^T dy of peftlab-s's LM
 * head (B = dy [1024, 2048], 8 MB) read it 24 times from memory and ran at about 4 GFLOP/s.
 */
function gemm(panels = false, fma = false): Body {
  const [M, N, K, A, sam, sak, B, sbk, C, scm, alpha, kmode, nmode, bias] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
  ];
  const f = new Body([I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, F32, I32, I32, I32]);
  const m0 = f.local(I32);
  const n0 = f.local(I32);
  const k = f.local(I32);
  const klo = f.local(I32);
  const khi = f.local(I32);
  const nhi = f.local(I32);
  const pa = f.local(I32);
  const pb = f.local(I32);
  const pc = f.local(I32);
  const t = f.local(I32);
  const sam2 = f.local(I32);
  const sam3 = f.local(I32);
  const acc = Array.from({ length: 8 }, () => f.local(V128));
  const b0 = f.local(V128);
  const b1 = f.local(V128);
  const a = f.local(V128);
  const va = f.local(V128);
  const bv = [f.local(V128), f.local(V128)];
  f.get(alpha).splat().set(va);
  f.get(sam).get(sam).add().set(sam2);
  f.get(sam2).get(sam).add().set(sam3);
  // One 4 x 8 tile of C at (m0, n0), over k in [klo, khi).
  const tile = (): void => {
    for (const x of acc) f.vSplatConst(0).set(x);
    // pa = A + m0 sam + klo sak;  pb = B + klo sbk + 4 n0
    f.get(A).get(m0).get(sam).mul().add().get(klo).get(sak).mul().add().set(pa);
    f.get(B).get(klo).get(sbk).mul().add().get(n0).i32(4).mul().add().set(pb);
    f.get(klo).set(k);
    f.loopWhile(
      () => f.get(k).get(khi).ltS(),
      () => {
        f.get(pb).vLoad().set(b0);
        f.get(pb).vLoad(16).set(b1);
        const rowOff = [null, sam, sam2, sam3];
        for (let r = 0; r < 4; r++) {
          f.get(pa);
          const off = rowOff[r];
          if (off !== null && off !== undefined) f.get(off).add();
          f.f32Load().splat().set(a);
          for (const [j, bj] of [b0, b1].entries()) {
            const c = acc[2 * r + j]!;
            if (fma) f.get(a).get(bj).get(c).vMadd().set(c);
            else f.get(c).get(a).get(bj).vMul().vAdd().set(c);
          }
        }
        f.inc(pa, () => f.get(sak));
        f.inc(pb, () => f.get(sbk));
        f.inc(k, 1);
      },
    );
    f.get(C).get(m0).get(scm).mul().add().get(n0).i32(4).mul().add().set(pc);
    // The bias's 8 columns (bias 0: none, zeros).
    for (const v of bv) f.vSplatConst(0).set(v);
    f.get(bias).when(() => {
      f.get(bias).get(n0).i32(4).mul().add().vLoad().set(bv[0]!);
      f.get(bias).get(n0).i32(4).mul().add().vLoad(16).set(bv[1]!);
    });
    for (let r = 0; r < 4; r++) {
      for (const j of [0, 1]) {
        f.get(pc)
          .get(acc[2 * r + j]!)
          .get(va)
          .vMul()
          .get(bv[j]!)
          .vAdd()
          .vStore(16 * j);
      }
      if (r < 3) f.inc(pc, () => f.get(scm));
    }
  };
  if (panels) {
    f.i32(0).set(klo);
    f.get(K).set(khi);
    f.i32(0).set(n0);
    f.loopWhile(
      () => f.get(n0).get(N).ltS(),
      () => {
        f.i32(0).set(m0);
        f.loopWhile(
          () => f.get(m0).get(M).ltS(),
          () => {
            tile();
            f.inc(m0, 4);
          },
        );
        f.inc(n0, 8);
      },
    );
    return f;
  }
  f.i32(0).set(m0);
  f.loopWhile(
    () => f.get(m0).get(M).ltS(),
    () => {
      // klo = kmode == 2 ? m0 : 0
      f.get(m0).i32(0).get(kmode).i32(2).eq().select().set(klo);
      // khi = kmode == 1 ? min(K, m0 + 4) : K
      f.get(m0).i32(4).add().tee(t).get(K).get(t).get(K).ltS().select().set(t);
      f.get(t).get(K).get(kmode).i32(1).eq().select().set(khi);
      // nhi = nmode == 1 ? min(N, (m0 + 11) & ~7) : N
      f.get(m0).i32(11).add().i32(-8).and().tee(t).get(N).get(t).get(N).ltS().select().set(t);
      f.get(t).get(N).get(nmode).i32(1).eq().select().set(nhi);
      f.i32(0).set(n0);
      f.loopWhile(
        () => f.get(n0).get(nhi).ltS(),
        () => {
          tile();
          f.inc(n0, 8);
        },
      );
      // Columns past nhi (nmode 1): zeros, so every row of C is defined.
      f.loopWhile(
        () => f.get(n0).get(N).ltS(),
        () => {
          f.get(C).get(m0).get(scm).mul().add().get(n0).i32(4).mul().add().set(pc);
          for (let r = 0; r < 4; r++) {
            f.get(pc).vSplatConst(0).vStore();
            if (r < 3) f.inc(pc, () => f.get(scm));
          }
          f.inc(n0, 4);
        },
      );
      f.inc(m0, 4);
    },
  );
  return f;
}

const LOG2E = 1.4426950408889634;
const GELU_A = 2 * Math.sqrt(2 / Math.PI);
const GELU_B = GELU_A * 0.044715;
const LN2_HI = 0.693359375;
const LN2_LO = -2.1219444e-4;
const EXP_P = [
  1.98756915e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
];

/**
 * Emits e^x for the f32x4 in local x (clamped to [-87.3, 88]), leaving it on the stack. With
 * `keep` (a v128 local), lanes where x <= -87.3 come out exactly 0 instead of about 2^-126.
 */
function expInto(f: Body, x: number, fx: number, y: number, keep?: number): void {
  // keep = x > -87.3 (f32x4.gt 0xfd 0x44), before the clamp
  if (keep !== undefined) f.get(x).vSplatConst(-87.3).op(0xfd, 0x44).set(keep);
  // Below -87.3 e^x is not a normal float (and -inf lands here); above 88 it overflows.
  f.get(x).vSplatConst(-87.3).vMax().vSplatConst(88).vMin().set(x);
  f.get(x).vSplatConst(LOG2E).vMul().vNearest().set(fx);
  f.get(x).get(fx).vSplatConst(LN2_HI).vMul().vSub().get(fx).vSplatConst(LN2_LO).vMul().vSub().set(x);
  f.vSplatConst(EXP_P[0]!).set(y);
  for (const p of EXP_P.slice(1)) f.get(y).get(x).vMul().vSplatConst(p).vAdd().set(y);
  // y = y x^2 + x + 1
  f.get(y).get(x).get(x).vMul().vMul().get(x).vAdd().vSplatConst(1).vAdd();
  // times 2^n: (n + 127) << 23 as float bits
  f.get(fx).vTruncSatI32().vI32Const(127).vI32Add().i32(23).vI32Shl().vMul();
  if (keep !== undefined) f.get(keep).op(0xfd, 0x4e); // v128.and
}

function softmax(): Body {
  const [S, T] = [0, 1];
  const f = new Body([I32, I32]);
  const i = f.local(I32);
  const j = f.local(I32);
  const row = f.local(I32);
  const p = f.local(I32);
  const end = f.local(I32);
  const vm = f.local(V128);
  const vs = f.local(V128);
  const x = f.local(V128);
  const fx = f.local(V128);
  const y = f.local(V128);
  const keep = f.local(V128);
  const m = f.local(F32);
  const hsum = (v: number): void => {
    f.get(v).lane(0).get(v).lane(1).op(0x92).get(v).lane(2).op(0x92).get(v).lane(3).op(0x92);
  };
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(T).ltS(),
    () => {
      f.get(S).get(i).get(T).mul().i32(4).mul().add().set(row);
      // Vectors cover columns [0, ceil4(i + 1)); the (at most 3) lanes past i are masked with -inf.
      f.get(row).get(i).i32(4).add().i32(-4).and().i32(4).mul().add().set(end);
      f.get(i).i32(1).add().set(j);
      f.loopWhile(
        () => f.get(row).get(j).i32(4).mul().add().get(end).ltS(),
        () => {
          f.get(row).get(j).i32(4).mul().add().f32(-Infinity).f32Store();
          f.inc(j, 1);
        },
      );
      f.vSplatConst(-Infinity).set(vm);
      f.get(row).set(p);
      f.loopWhile(
        () => f.get(p).get(end).ltS(),
        () => {
          f.get(vm).get(p).vLoad().vMax().set(vm);
          f.inc(p, 16);
        },
      );
      // m = max of the four lanes (f32.max 0x97)
      f.get(vm).lane(0).get(vm).lane(1).op(0x97).get(vm).lane(2).op(0x97).get(vm).lane(3).op(0x97).set(m);
      f.get(m).splat().set(vm);
      f.vSplatConst(0).set(vs);
      f.get(row).set(p);
      f.loopWhile(
        () => f.get(p).get(end).ltS(),
        () => {
          f.get(p).vLoad().get(vm).vSub().set(x);
          // Padded keys (keyBias's -1e9) get exactly 0, as the stock softmax gives them: the
          // clamped 2^-126 over the row's sum is a subnormal, which P V and the backward then
          // multiply at a fraction of the normal rate (a classification forward took a third longer).
          expInto(f, x, fx, y, keep);
          f.set(x);
          f.get(p).get(x).vStore();
          f.get(vs).get(x).vAdd().set(vs);
          f.inc(p, 16);
        },
      );
      f.f32(1);
      hsum(vs);
      f.op(0x95).splat().set(vs); // 1 / sum
      f.get(row).set(p);
      f.loopWhile(
        () => f.get(p).get(end).ltS(),
        () => {
          f.get(p).get(p).vLoad().get(vs).vMul().vStore();
          f.inc(p, 16);
        },
      );
      // Exactly zero past the diagonal: the (at most 3) masked lanes, then whole vectors to the row's end.
      f.get(i).i32(1).add().set(j);
      f.loopWhile(
        () => f.get(row).get(j).i32(4).mul().add().get(end).ltS(),
        () => {
          f.get(row).get(j).i32(4).mul().add().f32(0).f32Store();
          f.inc(j, 1);
        },
      );
      f.get(end).set(p);
      f.get(row).get(T).i32(4).mul().add().set(end);
      f.loopWhile(
        () => f.get(p).get(end).ltS(),
        () => {
          f.get(p).vSplatConst(0).vStore();
          f.inc(p, 16);
        },
      );
      f.inc(i, 1);
    },
  );
  return f;
}

/** The stock path's bias for a padded key (gpt2.ts, llama.ts): large, finite, so a fully masked row stays finite. */
const MASKED = -1e9;

/**
 * S [T rows of Tp floats] += the padding bias of one batch item: for every key j < T whose mask
 * (T floats at `mask`) is not 1, add = (1 - mask[j]) MASKED (the same f32 operations as
 * attentionBias's tf.sub and tf.mul) to S[i, j] for T > i >= j, the entries causal softmax reads.
 */
function keyBias(): Body {
  const [S, Tp, T, mask] = [0, 1, 2, 3];
  const f = new Body([I32, I32, I32, I32]);
  const j = f.local(I32);
  const i = f.local(I32);
  const p = f.local(I32);
  const add = f.local(F32);
  f.i32(0).set(j);
  f.loopWhile(
    () => f.get(j).get(T).ltS(),
    () => {
      // add = (1 - mask[j]) MASKED  (f32.sub 0x93, f32.mul 0x94)
      f.f32(1).get(mask).get(j).i32(4).mul().add().f32Load().op(0x93).f32(MASKED).op(0x94).set(add);
      f.get(add)
        .f32(0)
        .op(0x5c)
        .when(() => {
          // a real key (mask 1) adds 0 and is skipped; f32.ne 0x5c
          f.get(S).get(j).get(Tp).mul().get(j).add().i32(4).mul().add().set(p); // &S[j, j]
          f.get(j).set(i);
          f.loopWhile(
            () => f.get(i).get(T).ltS(),
            () => {
              f.get(p).get(p).f32Load().get(add).op(0x92).f32Store(); // f32.add 0x92
              f.inc(p, () => f.get(Tp).i32(4).mul());
              f.inc(i, 1);
            },
          );
        });
      f.inc(j, 1);
    },
  );
  return f;
}

function dsoftmax(): Body {
  const [P, D, T] = [0, 1, 2];
  const f = new Body([I32, I32, I32]);
  const i = f.local(I32);
  const pp = f.local(I32);
  const pd = f.local(I32);
  const end = f.local(I32);
  const vs = f.local(V128);
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(T).ltS(),
    () => {
      f.get(P).get(i).get(T).mul().i32(4).mul().add().set(pp);
      f.get(D).get(i).get(T).mul().i32(4).mul().add().set(pd);
      f.get(pd).get(T).i32(4).mul().add().set(end);
      f.vSplatConst(0).set(vs);
      f.loopWhile(
        () => f.get(pd).get(end).ltS(),
        () => {
          f.get(vs).get(pp).vLoad().get(pd).vLoad().vMul().vAdd().set(vs);
          f.inc(pp, 16);
          f.inc(pd, 16);
        },
      );
      f.get(vs).lane(0).get(vs).lane(1).op(0x92).get(vs).lane(2).op(0x92).get(vs).lane(3).op(0x92);
      f.splat().set(vs);
      f.get(P).get(i).get(T).mul().i32(4).mul().add().set(pp);
      f.get(D).get(i).get(T).mul().i32(4).mul().add().set(pd);
      f.loopWhile(
        () => f.get(pd).get(end).ltS(),
        () => {
          f.get(pd).get(pp).vLoad().get(pd).vLoad().get(vs).vSub().vMul().vStore();
          f.inc(pp, 16);
          f.inc(pd, 16);
        },
      );
      f.inc(i, 1);
    },
  );
  return f;
}

function copy(): Body {
  const [src, sRow, sCol, dst, dRow, dCol, rows, cols, scale] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
  const f = new Body([I32, I32, I32, I32, I32, I32, I32, I32, F32]);
  const r = f.local(I32);
  const c = f.local(I32);
  const ps = f.local(I32);
  const pd = f.local(I32);
  f.i32(0).set(r);
  f.loopWhile(
    () => f.get(r).get(rows).ltS(),
    () => {
      f.get(src).get(r).get(sRow).mul().add().set(ps);
      f.get(dst).get(r).get(dRow).mul().add().set(pd);
      f.i32(0).set(c);
      f.loopWhile(
        () => f.get(c).get(cols).ltS(),
        () => {
          f.get(pd).get(ps).f32Load().get(scale).op(0x94).f32Store();
          f.inc(ps, () => f.get(sCol));
          f.inc(pd, () => f.get(dCol));
          f.inc(c, 1);
        },
      );
      f.inc(r, 1);
    },
  );
  return f;
}

/** copy's contiguous case in vectors: rows of `bytes` (a multiple of 16), any row strides. */
function copyRows(): Body {
  const [src, sRow, dst, dRow, rows, bytes, sc] = [0, 1, 2, 3, 4, 5, 6];
  const f = new Body([I32, I32, I32, I32, I32, I32, F32]);
  const r = f.local(I32);
  const j = f.local(I32);
  const vs = f.local(V128);
  f.get(sc).splat().set(vs);
  f.i32(0).set(r);
  f.loopWhile(
    () => f.get(r).get(rows).ltS(),
    () => {
      f.i32(0).set(j);
      f.loopWhile(
        () => f.get(j).get(bytes).ltS(),
        () => {
          f.get(dst).get(j).add().get(src).get(j).add().vLoad().get(vs).vMul().vStore();
          f.inc(j, 16);
        },
      );
      f.inc(src, () => f.get(sRow));
      f.inc(dst, () => f.get(dRow));
      f.inc(r, 1);
    },
  );
  return f;
}

/** dst = s * src over `bytes` (a multiple of 16). */
function scale(): Body {
  const [src, dst, bytes, sc] = [0, 1, 2, 3];
  const f = new Body([I32, I32, I32, F32]);
  const i = f.local(I32);
  const vs = f.local(V128);
  f.get(sc).splat().set(vs);
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(bytes).ltS(),
    () => {
      f.get(dst).get(i).add().get(src).get(i).add().vLoad().get(vs).vMul().vStore();
      f.inc(i, 16);
    },
  );
  return f;
}

/** dst += src over `bytes` (a multiple of 16). */
function addTo(): Body {
  const [src, dst, bytes] = [0, 1, 2];
  const f = new Body([I32, I32, I32]);
  const i = f.local(I32);
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(bytes).ltS(),
    () => {
      f.get(dst).get(i).add();
      f.get(dst).get(i).add().vLoad().get(src).get(i).add().vLoad().vAdd().vStore();
      f.inc(i, 16);
    },
  );
  return f;
}

/**
 * gelu_new over `bytes` (a multiple of 16) of x: s = sigmoid(z), z = A x + B x^3, y = x s (elementwise.ts
 * gives the formula); writes y and s (the backward reads s).
 */
function gelu(): Body {
  const [px, py, ps, bytes] = [0, 1, 2, 3];
  const f = new Body([I32, I32, I32, I32]);
  const i = f.local(I32);
  const x = f.local(V128);
  const z = f.local(V128);
  const fx = f.local(V128);
  const y = f.local(V128);
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(bytes).ltS(),
    () => {
      f.get(px).get(i).add().vLoad().set(x);
      // -z = -x (A + B x^2); s = 1 / (1 + e^-z)
      f.get(x).get(x).vMul().vSplatConst(-GELU_B).vMul().vSplatConst(-GELU_A).vAdd().get(x).vMul().set(z);
      expInto(f, z, fx, y);
      f.set(z);
      f.vSplatConst(1).vSplatConst(1).get(z).vAdd().vDiv().set(z);
      f.get(ps).get(i).add().get(z).vStore();
      f.get(py).get(i).add().get(x).get(z).vMul().vStore();
      f.inc(i, 16);
    },
  );
  return f;
}

/** gelu_new's gradient over `bytes` (a multiple of 16): dx = dy (s + x s (1 - s) (A + 3 B x^2)). */
function geluGrad(): Body {
  const [px, ps, pdy, pdx, bytes] = [0, 1, 2, 3, 4];
  const f = new Body([I32, I32, I32, I32, I32]);
  const i = f.local(I32);
  const x = f.local(V128);
  const sv = f.local(V128);
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(bytes).ltS(),
    () => {
      f.get(px).get(i).add().vLoad().set(x);
      f.get(ps).get(i).add().vLoad().set(sv);
      f.get(pdx).get(i).add();
      f.get(pdy).get(i).add().vLoad();
      // s + x s (1 - s) (A + 3B x^2)
      f.get(sv);
      f.get(x).get(sv).vMul().vSplatConst(1).get(sv).vSub().vMul();
      f.get(x)
        .get(x)
        .vMul()
        .vSplatConst(3 * GELU_B)
        .vMul()
        .vSplatConst(GELU_A)
        .vAdd()
        .vMul();
      f.vAdd().vMul().vStore();
      f.inc(i, 16);
    },
  );
  return f;
}

/** Sum of the four lanes of local v, left on the stack as an f32 (f32.add 0x92). */
function hsum(f: Body, v: number): void {
  f.get(v).lane(0).get(v).lane(1).op(0x92).get(v).lane(2).op(0x92).get(v).lane(3).op(0x92);
}

/**
 * LayerNorm / RMSNorm forward over rows of Cb bytes (C % 4 == 0), the formulas of norms.ts:
 * y = (x - mean) rstd g + b (mean 0 for RMSNorm, whose b the caller points at zeros), and per row
 * (mean, rstd) into st.
 */
function normForward(): Body {
  const [x, g, b, y, st, rows, Cb, invC, eps, rms] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const f = new Body([I32, I32, I32, I32, I32, I32, I32, F32, F32, I32]);
  const r = f.local(I32);
  const j = f.local(I32);
  const px = f.local(I32);
  const py = f.local(I32);
  const mean = f.local(F32);
  const rstd = f.local(F32);
  const vs = f.local(V128);
  const vm = f.local(V128);
  const c = f.local(V128);
  f.i32(0).set(r);
  f.loopWhile(
    () => f.get(r).get(rows).ltS(),
    () => {
      f.get(x).get(r).get(Cb).mul().add().set(px);
      f.get(y).get(r).get(Cb).mul().add().set(py);
      f.vSplatConst(0).set(vs);
      f.i32(0).set(j);
      f.loopWhile(
        () => f.get(j).get(Cb).ltS(),
        () => {
          f.get(vs).get(px).get(j).add().vLoad().vAdd().set(vs);
          f.inc(j, 16);
        },
      );
      hsum(f, vs);
      f.get(invC).op(0x94).f32(0).get(rms).op(0x45).select().tee(mean).splat().set(vm); // rms ? 0 : mean
      f.vSplatConst(0).set(vs);
      f.i32(0).set(j);
      f.loopWhile(
        () => f.get(j).get(Cb).ltS(),
        () => {
          f.get(px).get(j).add().vLoad().get(vm).vSub().set(c);
          f.get(vs).get(c).get(c).vMul().vAdd().set(vs);
          f.inc(j, 16);
        },
      );
      f.f32(1);
      hsum(f, vs);
      f.get(invC).op(0x94).get(eps).op(0x92).op(0x91).op(0x95).set(rstd); // 1 / sqrt(var + eps)
      f.get(st).get(r).i32(8).mul().add().get(mean).f32Store();
      f.get(st).get(r).i32(8).mul().add().get(rstd).f32Store(4);
      f.get(rstd).splat().set(c);
      f.i32(0).set(j);
      f.loopWhile(
        () => f.get(j).get(Cb).ltS(),
        () => {
          f.get(py).get(j).add();
          f.get(px).get(j).add().vLoad().get(vm).vSub().get(c).vMul();
          f.get(g).get(j).add().vLoad().vMul().get(b).get(j).add().vLoad().vAdd().vStore();
          f.inc(j, 16);
        },
      );
      f.inc(r, 1);
    },
  );
  return f;
}

/**
 * LayerNorm / RMSNorm backward (norms.ts's formulas): dx = rstd (dy g - mean(dy g) - xhat mean(dy g
 * xhat)), mean(dy g) taken as 0 for RMSNorm; with `params`, dg += dy xhat and db += dy (zeroed by
 * the caller; RMSNorm's db points at scratch).
 */
function normBackward(): Body {
  const [x, dy, st, g, dx, dg, db, rows, Cb, invC, rms, params] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
  const f = new Body([I32, I32, I32, I32, I32, I32, I32, I32, I32, F32, I32, I32]);
  const r = f.local(I32);
  const j = f.local(I32);
  const o = f.local(I32);
  const vm = f.local(V128);
  const vr = f.local(V128);
  const vsg = f.local(V128);
  const vsgx = f.local(V128);
  const xh = f.local(V128);
  const gd = f.local(V128);
  const d = f.local(V128);
  const xhat = (): void => {
    f.get(x).get(o).add().get(j).add().vLoad().get(vm).vSub().get(vr).vMul().set(xh);
  };
  f.i32(0).set(r);
  f.loopWhile(
    () => f.get(r).get(rows).ltS(),
    () => {
      f.get(r).get(Cb).mul().set(o);
      f.get(st).get(r).i32(8).mul().add().f32Load().splat().set(vm);
      f.get(st).get(r).i32(8).mul().add().f32Load(4).splat().set(vr);
      f.vSplatConst(0).set(vsg);
      f.vSplatConst(0).set(vsgx);
      f.i32(0).set(j);
      f.loopWhile(
        () => f.get(j).get(Cb).ltS(),
        () => {
          xhat();
          f.get(dy).get(o).add().get(j).add().vLoad().get(g).get(j).add().vLoad().vMul().set(gd);
          f.get(vsg).get(gd).vAdd().set(vsg);
          f.get(vsgx).get(gd).get(xh).vMul().vAdd().set(vsgx);
          f.inc(j, 16);
        },
      );
      f.get(params).when(() => {
        f.i32(0).set(j);
        f.loopWhile(
          () => f.get(j).get(Cb).ltS(),
          () => {
            xhat();
            f.get(dy).get(o).add().get(j).add().vLoad().set(d);
            f.get(dg).get(j).add().get(dg).get(j).add().vLoad().get(d).get(xh).vMul().vAdd().vStore();
            f.get(db).get(j).add().get(db).get(j).add().vLoad().get(d).vAdd().vStore();
            f.inc(j, 16);
          },
        );
      });
      hsum(f, vsg);
      f.get(invC).op(0x94).f32(0).get(rms).op(0x45).select().splat().set(vsg); // mean(dy g), 0 for RMSNorm
      hsum(f, vsgx);
      f.get(invC).op(0x94).splat().set(vsgx);
      f.i32(0).set(j);
      f.loopWhile(
        () => f.get(j).get(Cb).ltS(),
        () => {
          xhat();
          f.get(dx).get(o).add().get(j).add();
          f.get(dy).get(o).add().get(j).add().vLoad().get(g).get(j).add().vLoad().vMul();
          f.get(vsg).vSub().get(xh).get(vsgx).vMul().vSub().get(vr).vMul().vStore();
          f.inc(j, 16);
        },
      );
      f.inc(r, 1);
    },
  );
  return f;
}

/**
 * AdamW over `bytes` (a multiple of 16), each product rounded where the stock ops round it:
 *   g' = g sc;  m = m b1 + g' (1 - b1);  v = v b2 + g'^2 (1 - b2)    (m, v written in place)
 *   out = p - lr ((m / c1) / (sqrt(v / c2) + eps) + p wd)
 */
function adamw(): Body {
  const [p, m, v, g, out, bytes, sc, b1, b1m, b2, b2m, c1, c2, eps, wd, lr] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
  ];
  const f = new Body([I32, I32, I32, I32, I32, I32, F32, F32, F32, F32, F32, F32, F32, F32, F32, F32]);
  const i = f.local(I32);
  // The scalars splatted to four lanes, one local each.
  const splats = [sc, b1, b1m, b2, b2m, c1, c2, eps, wd, lr].map((x) => [x, f.local(V128)] as const);
  const [vsc, vb1, vb1m, vb2, vb2m, vc1, vc2, veps, vwd, vlr] = splats.map(([, l]) => l) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const gi = f.local(V128);
  const mi = f.local(V128);
  const vi = f.local(V128);
  const pi = f.local(V128);
  for (const [from, to] of splats) f.get(from).splat().set(to);
  f.i32(0).set(i);
  f.loopWhile(
    () => f.get(i).get(bytes).ltS(),
    () => {
      f.get(g).get(i).add().vLoad().get(vsc).vMul().set(gi);
      f.get(m).get(i).add().vLoad().get(vb1).vMul().get(gi).get(vb1m).vMul().vAdd().set(mi);
      f.get(v).get(i).add().vLoad().get(vb2).vMul().get(gi).get(gi).vMul().get(vb2m).vMul().vAdd().set(vi);
      f.get(m).get(i).add().get(mi).vStore();
      f.get(v).get(i).add().get(vi).vStore();
      f.get(p).get(i).add().vLoad().set(pi);
      f.get(out).get(i).add().get(pi);
      // (m / c1) / (sqrt(v / c2) + eps) + p wd, times lr, from p
      f.get(mi).get(vc1).vDiv().get(vi).get(vc2).vDiv().vSqrt().get(veps).vAdd().vDiv();
      f.get(pi).get(vwd).vMul().vAdd().get(vlr).vMul().vSub().vStore();
      f.inc(i, 16);
    },
  );
  return f;
}

function zero(): Body {
  const f = new Body([I32, I32]);
  f.get(0).i32(0).get(1).fill();
  return f;
}

/**
 * C = alpha A B (+ bias) on the heap: byte offsets and element strides of A, B and C; kmode and nmode pick the
 * transposed and triangular variants.
 */
type Gemm = (
  M: number,
  N: number,
  K: number,
  A: number,
  sam: number,
  sak: number,
  B: number,
  sbk: number,
  C: number,
  scm: number,
  alpha: number,
  kmode: number,
  nmode: number,
  /** Byte offset of N floats added to every row of C after alpha; 0 or left out: none (a wasm i32 argument left out is 0). */
  bias?: number,
) => void;

export interface SimdKernels {
  gemm: Gemm;
  /** gemm's plain case (kmode, nmode 0) by column panels: the same arguments, kmode and nmode ignored. */
  gemmPanels: Gemm;
  softmax(S: number, T: number): void;
  /** S: byte offset of T rows of Tp floats; mask: byte offset of T floats (1 a real key, 0 padding). */
  keyBias(S: number, Tp: number, T: number, mask: number): void;
  dsoftmax(P: number, dP: number, T: number): void;
  copy(
    src: number,
    sRow: number,
    sCol: number,
    dst: number,
    dRow: number,
    dCol: number,
    rows: number,
    cols: number,
    scale: number,
  ): void;
  zero(ptr: number, bytes: number): void;
  copyRows(
    src: number,
    sRow: number,
    dst: number,
    dRow: number,
    rows: number,
    bytes: number,
    scale: number,
  ): void;
  scale(src: number, dst: number, bytes: number, s: number): void;
  addTo(src: number, dst: number, bytes: number): void;
  gelu(x: number, y: number, s: number, bytes: number): void;
  geluGrad(x: number, s: number, dy: number, dx: number, bytes: number): void;
  normForward(
    x: number,
    g: number,
    b: number,
    y: number,
    st: number,
    rows: number,
    Cb: number,
    invC: number,
    eps: number,
    rms: number,
  ): void;
  normBackward(
    x: number,
    dy: number,
    st: number,
    g: number,
    dx: number,
    dg: number,
    db: number,
    rows: number,
    Cb: number,
    invC: number,
    rms: number,
    params: number,
  ): void;
  adamw(
    p: number,
    m: number,
    v: number,
    g: number,
    out: number,
    bytes: number,
    scale: number,
    b1: number,
    oneMinusB1: number,
    b2: number,
    oneMinusB2: number,
    c1: number,
    c2: number,
    eps: number,
    wd: number,
    lr: number,
  ): void;
}

const bytes = new Map<string, Uint8Array<ArrayBuffer>>();
const instances = new WeakMap<WebAssembly.Memory, Map<boolean, SimdKernels | null>>();

/**
 * The maximum our shared-memory variant declares: wasm32's 4 GiB (65536 pages of 64 KiB), which is
 * also the threaded build's heap (tfjs-backend-wasm 4.22's glue: `new WebAssembly.Memory({...,
 * maximum: 4294967296 / 65536, shared: true})`).
 */
export const THREADED_HEAP_MAX_PAGES = 65536;

/**
 * The module's bytes (built once per variant): unshared, or shared with `sharedMaxPages`; with `fma`
 * the gemms accumulate by relaxed SIMD's relaxed_madd (emit.ts vMadd; only where relaxedSimd()).
 */
export function simdModuleBytes(sharedMaxPages?: number, fma = false): Uint8Array<ArrayBuffer> {
  const key = `${sharedMaxPages}/${fma}`;
  let b = bytes.get(key);
  if (!b) {
    b = emitModule(
      [
        { name: 'gemm', body: gemm(false, fma), results: [] },
        { name: 'gemmPanels', body: gemm(true, fma), results: [] },
        { name: 'softmax', body: softmax(), results: [] },
        { name: 'dsoftmax', body: dsoftmax(), results: [] },
        { name: 'copy', body: copy(), results: [] },
        { name: 'zero', body: zero(), results: [] },
        { name: 'copyRows', body: copyRows(), results: [] },
        { name: 'scale', body: scale(), results: [] },
        { name: 'gelu', body: gelu(), results: [] },
        { name: 'geluGrad', body: geluGrad(), results: [] },
        { name: 'normForward', body: normForward(), results: [] },
        { name: 'normBackward', body: normBackward(), results: [] },
        { name: 'addTo', body: addTo(), results: [] },
        { name: 'adamw', body: adamw(), results: [] },
        { name: 'keyBias', body: keyBias(), results: [] },
      ],
      sharedMaxPages,
    );
    bytes.set(key, b);
  }
  return b;
}

/**
 * Our kernels over `memory` (instantiated once per memory and variant, synchronously: the module is
 * a few KB), or null where they cannot run (no WebAssembly SIMD, or `fma` where the engine has no
 * relaxed SIMD). A shared memory (the threaded build) takes the variant whose import is declared
 * shared with wasm32's largest maximum, which accepts any shared memory's (import matching: the
 * memory's maximum at most the declared one). Our kernels run on the calling thread only, between
 * tfjs kernels, so a shared heap needs no atomics here.
 */
export function simdKernels(memory: WebAssembly.Memory, fma = false): SimdKernels | null {
  let byVariant = instances.get(memory);
  if (!byVariant) instances.set(memory, (byVariant = new Map()));
  if (byVariant.has(fma)) return byVariant.get(fma)!;
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  let k: SimdKernels | null;
  try {
    const mod = new WebAssembly.Module(simdModuleBytes(shared ? THREADED_HEAP_MAX_PAGES : undefined, fma));
    k = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as SimdKernels;
  } catch {
    k = null;
  }
  byVariant.set(fma, k);
  return k;
}
