/**
 * Causal self-attention, fused: softmax(q k^T scale + causal mask) v for q, k, v [B, H, T, D],
 * without ever storing the [B, H, T, T] scores or probabilities (flash-attention's recomputation):
 *   forward   L [B, H, T] = logsumexp_j<=i (scale q_i . k_j)     1 dispatch, a thread per query row
 *             o_i = sum_j<=i exp(scale q_i . k_j - L_i) v_j      1 dispatch, a thread per query row
 *   backward  with P_ij = exp(scale q_i . k_j - L_i), dP_ij = do_i . v_j, Delta_i = do_i . o_i:
 *             dq_i = scale sum_j<=i P_ij (dP_ij - Delta_i) k_j    1 dispatch, a thread per query row
 *             dk_j = scale sum_i>=j P_ij (dP_ij - Delta_i) q_i    1 dispatch, a thread per key row
 *             dv_j = sum_i>=j P_ij do_i                           1 dispatch, a thread per key row
 * Saved for backward: q, k, v, o and L only. Stock tfjs (gpt2.ts's attention) takes about 8
 * dispatches forward and keeps scores and probabilities, [B, H, T, T] each.
 * The head size D is compiled in (a private accumulator of D floats per thread), so it is in the
 * shader key; T, B*H and the scale are uniforms. One thread per row is the simple form; a tiled
 * form (a workgroup per block of rows, k and v tiles in shared memory) is the next step on a GPU.
 * Three layouts: q, k, v [B, H, T, D] (causalAttention); packed as c_attn writes them, qkv
 * [B, T, 3C] -> y [B, T, C] (causalAttentionPacked, what gpt2.ts uses: no transposes around it, and
 * dq, dk, dv as one dispatch writing dqkv [B, T, 3C]); and grouped-query, q [B, T, H D] with k, v
 * [B, T, KV D] (gqaCausalAttention, what llama.ts uses after RoPE: query head h reads key/value
 * head floor(h / (H / KV)) in place, no repeat_kv copies; dk and dv sum over the group's heads).
 * Each takes an optional key mask [B, T] (1 a real key, 0 padding; classification batches): a
 * padded key's score gets (1 - mask) MASKED on top of the causal mask, the stock bias exactly
 * (gpt2.ts attentionBias), in its own shader variant so unmasked calls do not pay for it.
 */
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { InternalError } from '../../errors';
import { flatProgram, onWebGpu, registerWebGpuKernel, runKernel, runProgram, type Uniform } from './program';

export const ATT_LSE = 'PeftLabAttentionLse';
export const ATT_OUT = 'PeftLabAttentionOut';
export const ATT_DQ = 'PeftLabAttentionDq';
export const ATT_DK = 'PeftLabAttentionDk';
export const ATT_DV = 'PeftLabAttentionDv';

export const ATT_PACKED_LSE = 'PeftLabAttentionPackedLse';
export const ATT_PACKED_OUT = 'PeftLabAttentionPackedOut';
export const ATT_PACKED_DQKV = 'PeftLabAttentionPackedDqkv';

export const ATT_GQA_LSE = 'PeftLabAttentionGqaLse';
export const ATT_GQA_OUT = 'PeftLabAttentionGqaOut';
export const ATT_GQA_DQ = 'PeftLabAttentionGqaDq';
export const ATT_GQA_DK = 'PeftLabAttentionGqaDk';
export const ATT_GQA_DV = 'PeftLabAttentionGqaDv';

/** What a padded key's score gets, as the stock bias adds it (gpt2.ts, llama.ts: MASKED). */
const MASKED = -1e9;

type Info = tf.TensorInfo;

/**
 * Where the rows live. `heads` ([B, H, T, D]): q, k, v, o each their own tensor, row (bh, t) at
 * (bh T + t) D. `packed`: q, k, v are column blocks of c_attn's output qkv [B, T, 3C] (row (b, t)
 * holds q heads, then k heads, then v heads, head h at h D within its block), o and dO are
 * [B, T, C]; reading and writing these in place saves gpt2.ts a transpose and an unstack forward and
 * their gradients (a stack, a transpose) backward, per layer. `gqa`: q, o, dO [B, T, H D] and k, v
 * [B, T, KV D], heads side by side; query head h reads key/value head h / G (G = H / KV).
 */
type Layout = 'heads' | 'packed' | 'gqa';

/** WGSL offset functions of a layout (qOff, kOff, vOff, oOff), and the buffers q, k, v are in. */
function addressing(layout: Layout): { Q: string; K: string; V: string; code: string } {
  if (layout === 'heads') {
    const rowOf = 'return (bh * uniforms.T + t) * uniforms.D;';
    return {
      Q: 'q',
      K: 'k',
      V: 'v',
      code: ['q', 'k', 'v', 'o'].map((n) => `fn ${n}Off(bh: i32, t: i32) -> i32 { ${rowOf} }`).join('\n'),
    };
  }
  if (layout === 'gqa') {
    // bh is always a query head's row block (b H + h); keys and values of batch b sit in rows of
    // width C / G, head h's at (h / G) D.
    return {
      Q: 'q',
      K: 'k',
      V: 'v',
      code: `
      fn tokOf(bh: i32, t: i32) -> i32 { return (bh / uniforms.H) * uniforms.T + t; }
      fn qOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * uniforms.C + (bh % uniforms.H) * uniforms.D; }
      fn kOff(bh: i32, t: i32) -> i32 {
        return tokOf(bh, t) * (uniforms.C / uniforms.G) + ((bh % uniforms.H) / uniforms.G) * uniforms.D;
      }
      fn vOff(bh: i32, t: i32) -> i32 { return kOff(bh, t); }
      fn oOff(bh: i32, t: i32) -> i32 { return qOff(bh, t); }`,
    };
  }
  return {
    Q: 'qkv',
    K: 'qkv',
    V: 'qkv',
    code: `
      fn tokOf(bh: i32, t: i32) -> i32 { return (bh / uniforms.H) * uniforms.T + t; }
      fn headOf(bh: i32) -> i32 { return (bh % uniforms.H) * uniforms.D; }
      fn qOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * 3 * uniforms.C + headOf(bh); }
      fn kOff(bh: i32, t: i32) -> i32 { return qOff(bh, t) + uniforms.C; }
      fn vOff(bh: i32, t: i32) -> i32 { return qOff(bh, t) + 2 * uniforms.C; }
      fn oOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * uniforms.C + headOf(bh); }`,
  };
}

/** Which helpers a shader needs: the backward ones (do . v, Delta), the saved row statistics. */
interface Needs {
  backward: boolean;
  lse: boolean;
  masked: boolean;
}

/**
 * Helpers every attention shader shares: the scaled score of (i, j) (with the key mask's bias in
 * the masked variant), the probability from the saved row statistics, do_i . v_j, Delta_i.
 *
 * The row statistics: unmasked, L_i = logsumexp, one float a row. Masked, (m_i, log l_i) apart,
 * two floats a row: in a row whose keys are all padded every score is about MASKED, and
 * m + log(l) rounds log(l) away (f32 spacing at 1e9 is 64), so exp(s - L) would be 1 for every
 * key instead of 1 / l. Kept apart, (s - m) - log(l) gives the stock softmax's uniform row.
 *
 * Such a row ("dead": no real key up to i; left padding, or an empty example) is where the masked
 * variant must do more than add the bias to the causal loop. The stock bias is additive, so its
 * padded keys j <= i and its real keys j > i all sit at MASKED while padded keys j > i sit at
 * 2 MASKED: the stock softmax spreads the row over the former, later real keys included. The
 * masked loops read keys up to keyEnd (T - 1 in a dead row, else i) with the causal bias added,
 * and a key's gradient loops over the dead rows before it too, so every row equals the stock's.
 */
function common(layout: Layout, needs: Needs): string {
  const { Q, K, V, code } = addressing(layout);
  // The masked variant adds the stock bias whole: the causal part too, since a row with no real
  // key up to i also reads later keys (see keyEnd).
  const bias = needs.masked ? ' + keyBias(bh, j) + select(0.0, -1.0e9, j > i)' : '';
  let out = `${code}
  fn score(bh: i32, i: i32, j: i32) -> f32 {
    let qo = qOff(bh, i);
    let ko = kOff(bh, j);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(${Q}[qo + d], ${K}[ko + d], s); }
    return s * uniforms.scale${bias};
  }`;
  out += rowHelpers(needs, 'uniforms.T', 'i');
  if (!needs.backward) return out;
  // Delta_i = do_i . o_i, recomputed where needed (D multiply-adds, the cost of one score).
  return `${out}
  fn dotDoV(bh: i32, i: i32, j: i32) -> f32 {
    let a = oOff(bh, i);
    let b = vOff(bh, j);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[a + d], ${V}[b + d], s); }
    return s;
  }
  fn deltaOf(bh: i32, i: i32) -> f32 {
    let r = oOff(bh, i);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[r + d], o[r + d], s); }
    return s;
  }`;
}

/** The loop header over the keys query row `i` reads: j <= i, or up to keyEnd when masked. */
function keyLoop(masked: boolean): string {
  return masked
    ? 'let jEnd = keyEnd(bh, i);\n        for (var j = 0; j <= jEnd; j++) {'
    : 'for (var j = 0; j <= i; j++) {';
}

/** The loop header over the query rows that read key `j`: i >= j, and when masked the dead rows before it. */
function rowLoop(masked: boolean): string {
  if (!masked) return 'for (var i = j; i < uniforms.T; i++) {';
  return `let fb = firstReal(bh);
        for (var i = 0; i < uniforms.T; i++) {
          if (i < j && i >= fb) { continue; }`;
}

/**
 * The key mask's and the row statistics' helpers (see common): `keys` is the WGSL count of keys a
 * row of the mask holds (T, or P + T after a past), `last` the last key query i sees causally (i,
 * or P + i). Masked: keyBias, firstReal, keyEnd; with the saved statistics: rowLse and prob.
 */
function rowHelpers(needs: Needs, keys: string, last: string): string {
  let out = '';
  if (needs.masked) {
    out += `
  fn keyBias(bh: i32, j: i32) -> f32 {
    return (1.0 - keyMask[(bh / uniforms.H) * ${keys} + j]) * -1.0e9; // MASKED
  }
  fn firstReal(bh: i32) -> i32 {
    let row = (bh / uniforms.H) * ${keys};
    for (var j = 0; j < ${keys}; j++) { if (keyMask[row + j] != 0.0) { return j; } }
    return ${keys};
  }
  fn keyEnd(bh: i32, i: i32) -> i32 { return select(${last}, ${keys} - 1, ${last} < firstReal(bh)); }`;
  }
  if (needs.lse) {
    const read = needs.masked
      ? 'let r = 2 * (bh * uniforms.T + i); return vec2<f32>(lse[r], lse[r + 1]);'
      : 'return vec2<f32>(lse[bh * uniforms.T + i], 0.0);';
    out += `
  fn rowLse(bh: i32, i: i32) -> vec2<f32> { ${read} }
  fn prob(s: f32, L: vec2<f32>) -> f32 { return exp((s - L.x) - L.y); }`;
  }
  return out;
}

/** WGSL statements: with `bh`, `i` (a query row) and `index` (its row) in scope, writes its statistics. */
function lseBody(masked: boolean): string {
  const write = masked
    ? 'result[2 * index] = m;\n        result[2 * index + 1] = log(l);'
    : 'result[index] = m + log(l);';
  return `
        var m = -3.0e38;
        var l = 0.0;
        ${keyLoop(masked)}
          let s = score(bh, i, j);
          let mNew = max(m, s);
          l = l * exp(m - mNew) + exp(s - mNew);
          m = mNew;
        }
        ${write}`;
}

function outBody(layout: Layout, D: number, masked: boolean): string {
  const { V } = addressing(layout);
  return `
        var acc: array<f32, ${D}>;
        let li = rowLse(bh, i);
        ${keyLoop(masked)}
          let p = prob(score(bh, i, j), li);
          let vo = vOff(bh, j);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, ${V}[vo + d], acc[d]); }
        }
        let ro = oOff(bh, i);
        for (var d = 0; d < ${D}; d++) { result[ro + d] = acc[d]; }`;
}

/** dq for query row `i`, written at `at` (an offset expression in the output). */
function dqBody(layout: Layout, D: number, at: string, masked: boolean): string {
  const { K } = addressing(layout);
  return `
        let di = deltaOf(bh, i);
        let li = rowLse(bh, i);
        var acc: array<f32, ${D}>;
        ${keyLoop(masked)}
          let p = prob(score(bh, i, j), li);
          let kj = kOff(bh, j);
          let ds = p * (dotDoV(bh, i, j) - di);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, ${K}[kj + d], acc[d]); }
        }
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d] * uniforms.scale; }`;
}

/**
 * The loop over the query heads that read key row `j`: only `bh` itself, or in the grouped layout
 * the G heads from `bq` (so a key/value head's gradient is the sum over its group, in registers).
 */
function overHeads(grouped: boolean, body: string): string {
  if (!grouped) return body;
  return `
        for (var g = 0; g < uniforms.G; g++) {
          let bh = bq + g;${body}
        }`;
}

/** dk for key row `j`. */
function dkBody(layout: Layout, D: number, at: string, masked: boolean, grouped = false): string {
  const { Q } = addressing(layout);
  const rows = `
        ${rowLoop(masked)}
          let p = prob(score(bh, i, j), rowLse(bh, i));
          let ds = p * (dotDoV(bh, i, j) - deltaOf(bh, i));
          let qi = qOff(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, ${Q}[qi + d], acc[d]); }
        }`;
  return `
        var acc: array<f32, ${D}>;${overHeads(grouped, rows)}
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d] * uniforms.scale; }`;
}

/** dv for key row `j`. */
function dvBody(D: number, at: string, masked: boolean, grouped = false): string {
  const rows = `
        ${rowLoop(masked)}
          let p = prob(score(bh, i, j), rowLse(bh, i));
          let oi = oOff(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, dO[oi + d], acc[d]); }
        }`;
  return `
        var acc: array<f32, ${D}>;${overHeads(grouped, rows)}
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d]; }`;
}

/** Sizes of a call: BH rows of query heads (B H), T, D, H query heads, G query heads per key head. */
interface Dims {
  BH: number;
  T: number;
  D: number;
  H: number;
  G: number;
}

function headsDims(q: Info): Dims {
  const [B, H, T, D] = q.shape as [number, number, number, number];
  return { BH: B * H, T, D, H, G: 1 };
}

function packedDims(qkv: Info, H: number): Dims {
  const [B, T, C3] = qkv.shape as [number, number, number];
  return { BH: B * H, T, D: C3 / 3 / H, H, G: 1 };
}

function gqaDims(q: Info, k: Info, H: number): Dims {
  const [B, T, C] = q.shape as [number, number, number];
  const D = C / H;
  return { BH: B * H, T, D, H, G: H / (k.shape[2]! / D) };
}

function uniforms(dm: Dims, scale: number, rows = dm.BH * dm.T): Uniform[] {
  return [
    { type: 'int32', data: [rows] },
    { type: 'int32', data: [dm.T] },
    { type: 'int32', data: [dm.D] },
    { type: 'int32', data: [dm.H] },
    { type: 'int32', data: [dm.H * dm.D] },
    { type: 'int32', data: [dm.G] },
    { type: 'float32', data: [scale] },
  ];
}
const U = 'rows: i32, T: i32, D: i32, H: i32, C: i32, G: i32, scale: f32,';

/** `index` -> (bh, t) for a thread per row of [B H, T]. */
const ROW = `
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.T;
        let t = index - bh * uniforms.T;`;

/** `index` -> key row j of key/value head (b, kvh), and bq = b H + kvh G, its group's first query head. */
const KEY_ROW = `
        if (index >= uniforms.rows) { return; }
        let bk = index / uniforms.T;
        let j = index - bk * uniforms.T;
        let KV = uniforms.H / uniforms.G;
        let bq = (bk / KV) * uniforms.H + (bk % KV) * uniforms.G;`;

/** One dispatch of an attention stage. */
interface Stage {
  /** In the shader key, with the layout, D and the mask variant. */
  name: string;
  /** Inputs the shader reads, in binding order; `keyMask` is appended when the call has one. */
  vars: string[];
  outputShape: number[];
  threads: number;
  needs: Omit<Needs, 'masked'>;
  main: string;
}

function launch(
  be: WebGPUBackend,
  layout: Layout,
  dm: Dims,
  scale: number,
  inputs: Record<string, Info>,
  s: Stage,
): Info {
  const masked = inputs.keyMask !== undefined;
  const names = masked ? [...s.vars, 'keyMask'] : s.vars;
  const p = flatProgram(
    `peftAtt_${layout}_${s.name}_${dm.D}${masked ? '_masked' : ''}`,
    names,
    s.outputShape,
    s.threads,
    U,
    `${common(layout, { ...s.needs, masked })}
      fn main(index: i32) {${s.main}
      }`,
  );
  return runProgram(
    be,
    p,
    names.map((n) => inputs[n]!),
    uniforms(dm, scale, s.threads),
  );
}

/** The row statistics' shape: one float a query row, two in the masked variant (see common). */
const lseShape = (dm: Dims, inputs: Record<string, Info>): number[] =>
  inputs.keyMask ? [dm.BH * dm.T, 2] : [dm.BH * dm.T];

type Attrs = { scale: number; heads?: number };

const reg = registerWebGpuKernel<Attrs>;

const FWD = { backward: false, lse: false };
const OUT = { backward: false, lse: true };
const BWD = { backward: true, lse: true };

let registered = false;
export function registerAttention(): void {
  if (registered) return;
  registered = true;

  // [B, H, T, D] and grouped-query: the same five stages, addressed differently.
  const separate = (
    layout: 'heads' | 'gqa',
    names: string[],
    dimsOf: (i: Record<string, Info>, a: Attrs) => Dims,
  ) => {
    const [lse, out, dq, dk, dv] = names as [string, string, string, string, string];
    const rows = (dm: Dims): number => dm.BH * dm.T;
    // A thread per key row: B H T of them, or B KV T in the grouped layout (each summing its group).
    const keyRows = (dm: Dims): number => rows(dm) / dm.G;
    const grouped = layout === 'gqa';
    const keyMain = (body: string): string =>
      grouped ? `${KEY_ROW}${body}` : `${ROW}\n        let j = t;${body}`;
    const at = grouped ? 'bq' : 'bh';
    reg(lse, (i, be, a) => {
      const dm = dimsOf(i, a);
      return launch(be, layout, dm, a.scale, i, {
        name: 'lse',
        vars: ['q', 'k'],
        outputShape: lseShape(dm, i),
        threads: rows(dm),
        needs: FWD,
        main: `${ROW}\n        let i = t;${lseBody(!!i.keyMask)}`,
      });
    });
    reg(out, (i, be, a) => {
      const dm = dimsOf(i, a);
      return launch(be, layout, dm, a.scale, i, {
        name: 'out',
        vars: ['q', 'k', 'v', 'lse'],
        outputShape: i.q!.shape,
        threads: rows(dm),
        needs: OUT,
        main: `${ROW}\n        let i = t;${outBody(layout, dm.D, !!i.keyMask)}`,
      });
    });
    const all = ['q', 'k', 'v', 'o', 'dO', 'lse'];
    reg(dq, (i, be, a) => {
      const dm = dimsOf(i, a);
      return launch(be, layout, dm, a.scale, i, {
        name: 'dq',
        vars: all,
        outputShape: i.q!.shape,
        threads: rows(dm),
        needs: BWD,
        main: `${ROW}\n        let i = t;${dqBody(layout, dm.D, 'qOff(bh, i)', !!i.keyMask)}`,
      });
    });
    reg(dk, (i, be, a) => {
      const dm = dimsOf(i, a);
      return launch(be, layout, dm, a.scale, i, {
        name: 'dk',
        vars: all,
        outputShape: i.k!.shape,
        threads: keyRows(dm),
        needs: BWD,
        main: keyMain(dkBody(layout, dm.D, `kOff(${at}, j)`, !!i.keyMask, grouped)),
      });
    });
    // dv needs neither v nor Delta, so neither o: the shader declares only what it reads.
    reg(dv, (i, be, a) => {
      const dm = dimsOf(i, a);
      return launch(be, layout, dm, a.scale, i, {
        name: 'dv',
        vars: ['q', 'k', 'dO', 'lse'],
        outputShape: i.k!.shape,
        threads: keyRows(dm),
        needs: OUT,
        main: keyMain(dvBody(dm.D, `vOff(${at}, j)`, !!i.keyMask, grouped)),
      });
    });
  };
  separate('heads', [ATT_LSE, ATT_OUT, ATT_DQ, ATT_DK, ATT_DV], (i) => headsDims(i.q!));
  separate('gqa', [ATT_GQA_LSE, ATT_GQA_OUT, ATT_GQA_DQ, ATT_GQA_DK, ATT_GQA_DV], (i, a) =>
    gqaDims(i.q!, i.k!, a.heads!),
  );

  reg(ATT_PACKED_LSE, (i, be, a) => {
    const dm = packedDims(i.qkv!, a.heads!);
    return launch(be, 'packed', dm, a.scale, i, {
      name: 'lse',
      vars: ['qkv'],
      outputShape: lseShape(dm, i),
      threads: dm.BH * dm.T,
      needs: FWD,
      main: `${ROW}\n        let i = t;${lseBody(!!i.keyMask)}`,
    });
  });
  reg(ATT_PACKED_OUT, (i, be, a) => {
    const dm = packedDims(i.qkv!, a.heads!);
    const [B, T] = i.qkv!.shape as [number, number, number];
    return launch(be, 'packed', dm, a.scale, i, {
      name: 'out',
      vars: ['qkv', 'lse'],
      outputShape: [B, T, dm.H * dm.D],
      threads: dm.BH * dm.T,
      needs: OUT,
      main: `${ROW}\n        let i = t;${outBody('packed', dm.D, !!i.keyMask)}`,
    });
  });
  // dq, dk and dv in one dispatch, written straight into dqkv [B, T, 3C] (qkv's own layout): a
  // thread per (part, row), the part outermost so a workgroup's threads mostly take one branch.
  reg(ATT_PACKED_DQKV, (i, be, a) => {
    const dm = packedDims(i.qkv!, a.heads!);
    const rows = dm.BH * dm.T;
    return launch(be, 'packed', dm, a.scale, i, {
      name: 'dqkv',
      vars: ['qkv', 'o', 'dO', 'lse'],
      outputShape: i.qkv!.shape,
      threads: 3 * rows,
      needs: BWD,
      main: `
        if (index >= uniforms.rows) { return; }
        let rowsPerPart = uniforms.rows / 3;
        let part = index / rowsPerPart;
        let r = index - part * rowsPerPart;
        let bh = r / uniforms.T;
        let t = r - bh * uniforms.T;
        if (part == 0) {
          let i = t;${dqBody('packed', dm.D, 'qOff(bh, i)', !!i.keyMask)}
        } else if (part == 1) {
          let j = t;${dkBody('packed', dm.D, 'kOff(bh, j)', !!i.keyMask)}
        } else {
          let j = t;${dvBody(dm.D, 'vOff(bh, j)', !!i.keyMask)}
        }`,
    });
  });
}

/**
 * The key mask as the kernels read it: float32 [B, T], checked against the keys' batch and length
 * (a mask of another shape would read out of bounds). Undefined stays undefined (unmasked shaders).
 */
function keyMaskFor(keyMask: tf.Tensor2D | undefined, B: number, T: number): tf.Tensor2D | undefined {
  if (!keyMask) return undefined;
  if (keyMask.shape[0] !== B || keyMask.shape[1] !== T) {
    throw new InternalError(`key mask has shape [${keyMask.shape}] but the keys are [${B}, ${T}]`);
  }
  return keyMask.dtype === 'float32' ? keyMask : tf.cast(keyMask, 'float32');
}

/** The key mask as a kernel input, or nothing (the unmasked variant). */
const maskInput = (m: tf.Tensor | undefined): Record<string, tf.Tensor> => (m ? { keyMask: m } : {});

/** The stock additive bias [B or 1, 1, T, T]: MASKED above the diagonal, (1 - mask) MASKED on padded keys. */
function stockBias(T: number, keyMask?: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const causal = tf.reshape(tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), MASKED), [
      1,
      1,
      T,
      T,
    ]);
    if (!keyMask) return causal as tf.Tensor4D;
    const B = keyMask.shape[0];
    const pad = tf.mul(tf.sub(1, tf.reshape(tf.cast(keyMask, 'float32'), [B, 1, 1, T])), MASKED);
    return tf.add(causal, pad) as tf.Tensor4D;
  });
}

/**
 * The stock composition, as gpt2.ts computes attention today (additive mask, softmax, product),
 * with the padding bias of `keyMask` [B, T] when given.
 */
export function causalAttentionStock(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor4D {
  const mask = stockBias(q.shape[2], keyMask);
  const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask);
  const out = tf.matMul(tf.softmax(scores, -1), v) as tf.Tensor4D;
  mask.dispose();
  return out;
}

/**
 * softmax(q k^T scale, causal [, padded keys masked]) v for q, k, v [B, H, T, D] (no past keys:
 * training), with gradients for q, k and v (the mask [B, T] has none). On backends other than
 * webgpu, the stock composition.
 */
export function causalAttention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor4D {
  if (!onWebGpu()) return causalAttentionStock(q, k, v, scale, keyMask);
  registerAttention();
  const km = keyMaskFor(keyMask, q.shape[0], q.shape[2]);
  const f = tf.customGrad((qi, ki, vi, save) => {
    const [qq, kk, vv] = [qi, ki, vi] as tf.Tensor[];
    const m = maskInput(km);
    const lse = runKernel(ATT_LSE, { q: qq!, k: kk!, ...m }, { scale });
    const o = runKernel(ATT_OUT, { q: qq!, k: kk!, v: vv!, lse, ...m }, { scale }) as tf.Tensor4D;
    // The mask is saved too: the backward pass may run after the caller has freed it.
    (save as tf.GradSaveFunc)([qq!, kk!, vv!, o, lse, ...(km ? [km] : [])]);
    return {
      value: o,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, os, ls, ms] = saved as tf.Tensor[];
        const sm = maskInput(ms);
        const all = { q: qs!, k: ks!, v: vs!, o: os!, dO: dy as tf.Tensor, lse: ls!, ...sm };
        return [
          runKernel(ATT_DQ, all, { scale }),
          runKernel(ATT_DK, all, { scale }),
          runKernel(ATT_DV, { q: qs!, k: ks!, dO: dy as tf.Tensor, lse: ls!, ...sm }, { scale }),
        ];
      },
    };
  }) as (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.Tensor4D;
  return f(q, k, v);
}

/**
 * The stock composition for the packed layout: qkv [B, T, 3C] split into heads [B, H, T, D] (reshape,
 * transpose, unstack), causalAttentionStock, and back to [B, T, C].
 */
export function causalAttentionPackedStock(
  qkv: tf.Tensor3D,
  heads: number,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  const split = tf.transpose(tf.reshape(qkv, [B, T, 3, heads, C / heads]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(split, 0) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const y = causalAttentionStock(q, k, v, scale, keyMask); // [B, H, T, D]
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, C]);
}

/**
 * Causal attention read straight from c_attn's output: qkv [B, T, 3C] (q, k, v column blocks, heads
 * side by side in each) -> y [B, T, C] (heads side by side, what c_proj reads), with the gradient
 * for qkv as one [B, T, 3C] tensor; padded keys masked when `keyMask` [B, T] is given. On webgpu 2
 * dispatches forward and 1 backward, no transposes; elsewhere the stock composition.
 */
export function causalAttentionPacked(
  qkv: tf.Tensor3D,
  heads: number,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  const C3 = qkv.shape[2];
  if (C3 % (3 * heads) !== 0) {
    throw new InternalError(`qkv has ${C3} columns, not 3 x a multiple of ${heads} heads`);
  }
  if (!onWebGpu()) return causalAttentionPackedStock(qkv, heads, scale, keyMask);
  registerAttention();
  const km = keyMaskFor(keyMask, qkv.shape[0], qkv.shape[1]);
  const attrs = { scale, heads };
  const f = tf.customGrad((x, save) => {
    const packed = x as tf.Tensor;
    const m = maskInput(km);
    const lse = runKernel(ATT_PACKED_LSE, { qkv: packed, ...m }, attrs);
    const o = runKernel(ATT_PACKED_OUT, { qkv: packed, lse, ...m }, attrs) as tf.Tensor3D;
    (save as tf.GradSaveFunc)([packed, o, lse, ...(km ? [km] : [])]);
    return {
      value: o,
      gradFunc: (dy, saved) => {
        const [qs, os, ls, ms] = saved as tf.Tensor[];
        const inputs = { qkv: qs!, o: os!, dO: dy as tf.Tensor, lse: ls!, ...maskInput(ms) };
        return runKernel(ATT_PACKED_DQKV, inputs, attrs);
      },
    };
  }) as (qkv: tf.Tensor) => tf.Tensor3D;
  return f(qkv);
}

/** Checks grouped-query shapes: q [B, T, H D], k and v [B, T, KV D] with KV dividing H. */
function gqaShapes(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number): { D: number; KV: number } {
  const [B, T, C] = q.shape;
  const D = C / heads;
  const KV = k.shape[2] / D;
  const same = (t: tf.Tensor3D): boolean => t.shape[0] === B && t.shape[1] === T;
  if (!Number.isInteger(D) || !Number.isInteger(KV) || heads % KV !== 0 || !same(k) || !same(v)) {
    throw new InternalError(
      `grouped-query attention needs q [B, T, H D], k and v [B, T, KV D] with KV dividing H = ${heads}; ` +
        `got q [${q.shape}], k [${k.shape}], v [${v.shape}]`,
    );
  }
  if (v.shape[2] !== k.shape[2]) throw new InternalError(`k [${k.shape}] and v [${v.shape}] differ`);
  return { D, KV };
}

/**
 * The stock composition for grouped-query attention: each key/value head repeated for its H / KV
 * query heads (HF's repeat_kv), heads split to [B, H, T, D], causalAttentionStock, merged back.
 */
export function gqaCausalAttentionStock(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  heads: number,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  const [B, T] = q.shape;
  const { D, KV } = gqaShapes(q, k, v, heads);
  const G = heads / KV;
  // Rank 4: tfjs has no tile gradient above it.
  const repeat = (x: tf.Tensor3D): tf.Tensor =>
    G === 1 ? x : tf.reshape(tf.tile(tf.reshape(x, [B * T, KV, 1, D]), [1, 1, G, 1]), [B, T, heads * D]);
  const split = (x: tf.Tensor): tf.Tensor4D =>
    tf.transpose(tf.reshape(x, [B, T, heads, D]), [0, 2, 1, 3]) as tf.Tensor4D;
  const y = causalAttentionStock(split(q), split(repeat(k)), split(repeat(v)), scale, keyMask);
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, heads * D]);
}

/**
 * Grouped-query causal attention (the Llama family, after RoPE): q [B, T, H D], k and v [B, T, KV D]
 * (heads side by side) -> [B, T, H D], query head h reading key/value head floor(h / (H / KV)) in
 * place, padded keys masked when `keyMask` [B, T] is given; gradients for q, k and v (dk, dv summed
 * over each group's query heads in the kernel). On webgpu 2 dispatches forward and 3 backward, no
 * repeat_kv and no transposes; elsewhere the stock composition.
 */
export function gqaCausalAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  heads: number,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  gqaShapes(q, k, v, heads);
  if (!onWebGpu()) return gqaCausalAttentionStock(q, k, v, heads, scale, keyMask);
  registerAttention();
  const km = keyMaskFor(keyMask, q.shape[0], q.shape[1]);
  const attrs = { scale, heads };
  const f = tf.customGrad((qi, ki, vi, save) => {
    const [qq, kk, vv] = [qi, ki, vi] as tf.Tensor[];
    const m = maskInput(km);
    const lse = runKernel(ATT_GQA_LSE, { q: qq!, k: kk!, ...m }, attrs);
    const o = runKernel(ATT_GQA_OUT, { q: qq!, k: kk!, v: vv!, lse, ...m }, attrs) as tf.Tensor3D;
    (save as tf.GradSaveFunc)([qq!, kk!, vv!, o, lse, ...(km ? [km] : [])]);
    return {
      value: o,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, os, ls, ms] = saved as tf.Tensor[];
        const sm = maskInput(ms);
        const all = { q: qs!, k: ks!, v: vs!, o: os!, dO: dy as tf.Tensor, lse: ls!, ...sm };
        return [
          runKernel(ATT_GQA_DQ, all, attrs),
          runKernel(ATT_GQA_DK, all, attrs),
          runKernel(ATT_GQA_DV, { q: qs!, k: ks!, dO: dy as tf.Tensor, lse: ls!, ...sm }, attrs),
        ];
      },
    };
  }) as (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => tf.Tensor3D;
  return f(q, k, v);
}

export const ATT_PAST_LSE = 'PeftLabAttentionPastLse';
export const ATT_PAST_OUT = 'PeftLabAttentionPastOut';
export const ATT_PAST_DQKV = 'PeftLabAttentionPastDqkv';
export const ATT_PAST_DK = 'PeftLabAttentionPastDk';
export const ATT_PAST_DV = 'PeftLabAttentionPastDv';

/**
 * Shared WGSL of the packed layout with P past keys (prefix tuning, P-tuning v2): S = P + T keys
 * indexed absolutely, j < P read from pastK, pastV [B, H, P, D] at ((b H + h) P + j) D, j >= P
 * from qkv's k, v blocks at row (b, j - P). Query i sits at absolute position P + i, so it sees keys
 * j <= P + i (gpt2.ts attentionBias's causal part) plus, masked, the padding bias over [B, S].
 * Prefix tuning's past keys are real (the mask has ones there), so every row has a real key; the
 * masked variant still handles a row whose keys up to P + i are all padded as the stock softmax
 * does (keyEnd, firstReal: see common), which a padded KV cache in generation could give.
 */
function pastCommon(needs: Needs): string {
  const bias = needs.masked ? ' + keyBias(bh, j) + select(0.0, -1.0e9, j > uniforms.P + i)' : '';
  const S = '(uniforms.P + uniforms.T)';
  let out = `
  fn tokOf(bh: i32, t: i32) -> i32 { return (bh / uniforms.H) * uniforms.T + t; }
  fn headOf(bh: i32) -> i32 { return (bh % uniforms.H) * uniforms.D; }
  fn qOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * 3 * uniforms.C + headOf(bh); }
  fn oOff(bh: i32, t: i32) -> i32 { return tokOf(bh, t) * uniforms.C + headOf(bh); }
  fn pastOff(bh: i32, j: i32) -> i32 { return (bh * uniforms.P + j) * uniforms.D; }
  fn kAt(bh: i32, j: i32, d: i32) -> f32 {
    if (j < uniforms.P) { return pastK[pastOff(bh, j) + d]; }
    return qkv[qOff(bh, j - uniforms.P) + uniforms.C + d];
  }
  fn score(bh: i32, i: i32, j: i32) -> f32 {
    let qo = qOff(bh, i);
    var s = 0.0;
    if (j < uniforms.P) {
      let ko = pastOff(bh, j);
      for (var d = 0; d < uniforms.D; d++) { s = fma(qkv[qo + d], pastK[ko + d], s); }
    } else {
      let ko = qOff(bh, j - uniforms.P) + uniforms.C;
      for (var d = 0; d < uniforms.D; d++) { s = fma(qkv[qo + d], qkv[ko + d], s); }
    }
    return s * uniforms.scale${bias};
  }`;
  out += rowHelpers(needs, S, 'uniforms.P + i');
  if (!needs.backward) return out;
  return `${out}
  fn vAt(bh: i32, j: i32, d: i32) -> f32 {
    if (j < uniforms.P) { return pastV[pastOff(bh, j) + d]; }
    return qkv[qOff(bh, j - uniforms.P) + 2 * uniforms.C + d];
  }
  fn dotDoV(bh: i32, i: i32, j: i32) -> f32 {
    let a = oOff(bh, i);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[a + d], vAt(bh, j, d), s); }
    return s;
  }
  fn deltaOf(bh: i32, i: i32) -> f32 {
    let r = oOff(bh, i);
    var s = 0.0;
    for (var d = 0; d < uniforms.D; d++) { s = fma(dO[r + d], o[r + d], s); }
    return s;
  }`;
}

/** The keys query row `i` reads: j <= P + i, or up to keyEnd when masked. */
const pastKeyLoop = (masked: boolean): string =>
  masked
    ? 'let jEnd = keyEnd(bh, i);\n        for (var j = 0; j <= jEnd; j++) {'
    : 'for (var j = 0; j <= uniforms.P + i; j++) {';

/** The query rows that read key `j` (absolute): P + i >= j, and when masked the dead rows too. */
const pastRowLoop = (masked: boolean): string =>
  masked
    ? `let fb = firstReal(bh);
        for (var i = 0; i < uniforms.T; i++) {
          if (uniforms.P + i < j && uniforms.P + i >= fb) { continue; }`
    : 'for (var i = max(j - uniforms.P, 0); i < uniforms.T; i++) {';

/** The sum over the rows that read key `j` of `term` (with p, ds in scope) times `row(i)`, written at `at`. */
function pastKeyGrad(D: number, masked: boolean, dk: boolean, at: string, scaled: boolean): string {
  const term = dk
    ? `let ds = p * (dotDoV(bh, i, j) - deltaOf(bh, i));
          let qi = qOff(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(ds, qkv[qi + d], acc[d]); }`
    : `let oi = oOff(bh, i);
          for (var d = 0; d < ${D}; d++) { acc[d] = fma(p, dO[oi + d], acc[d]); }`;
  return `
        var acc: array<f32, ${D}>;
        ${pastRowLoop(masked)}
          let p = prob(score(bh, i, j), rowLse(bh, i));
          ${term}
        }
        let w = ${at};
        for (var d = 0; d < ${D}; d++) { result[w + d] = acc[d]${scaled ? ' * uniforms.scale' : ''}; }`;
}

interface PastDims extends Dims {
  P: number;
}

function launchPast(
  be: WebGPUBackend,
  dm: PastDims,
  scale: number,
  inputs: Record<string, Info>,
  s: Stage,
): Info {
  const masked = inputs.keyMask !== undefined;
  const names = masked ? [...s.vars, 'keyMask'] : s.vars;
  const p = flatProgram(
    `peftAtt_packedPast_${s.name}_${dm.D}${masked ? '_masked' : ''}`,
    names,
    s.outputShape,
    s.threads,
    `${U} P: i32,`,
    `${pastCommon({ ...s.needs, masked })}
      fn main(index: i32) {${s.main}
      }`,
  );
  return runProgram(
    be,
    p,
    names.map((n) => inputs[n]!),
    [...uniforms(dm, scale, s.threads), { type: 'int32', data: [dm.P] }],
  );
}

let pastRegistered = false;
function registerPackedPast(): void {
  if (pastRegistered) return;
  pastRegistered = true;
  const dimsOf = (i: Record<string, Info>, a: Attrs): PastDims => ({
    ...packedDims(i.qkv!, a.heads!),
    P: i.pastK!.shape[2]!,
  });
  reg(ATT_PAST_LSE, (i, be, a) => {
    const dm = dimsOf(i, a);
    return launchPast(be, dm, a.scale, i, {
      name: 'lse',
      vars: ['qkv', 'pastK'],
      outputShape: lseShape(dm, i),
      threads: dm.BH * dm.T,
      needs: FWD,
      main: `${ROW}
        let i = t;
        var m = -3.0e38;
        var l = 0.0;
        ${pastKeyLoop(!!i.keyMask)}
          let s = score(bh, i, j);
          let mNew = max(m, s);
          l = l * exp(m - mNew) + exp(s - mNew);
          m = mNew;
        }
        ${i.keyMask ? 'result[2 * index] = m;\n        result[2 * index + 1] = log(l);' : 'result[index] = m + log(l);'}`,
    });
  });
  reg(ATT_PAST_OUT, (i, be, a) => {
    const dm = dimsOf(i, a);
    const [B, T] = i.qkv!.shape as [number, number, number];
    return launchPast(be, dm, a.scale, i, {
      name: 'out',
      vars: ['qkv', 'pastK', 'pastV', 'lse'],
      outputShape: [B, T, dm.H * dm.D],
      threads: dm.BH * dm.T,
      needs: OUT,
      main: `${ROW}
        let i = t;
        var acc: array<f32, ${dm.D}>;
        let li = rowLse(bh, i);
        ${pastKeyLoop(!!i.keyMask)}
          let p = prob(score(bh, i, j), li);
          if (j < uniforms.P) {
            let vo = pastOff(bh, j);
            for (var d = 0; d < ${dm.D}; d++) { acc[d] = fma(p, pastV[vo + d], acc[d]); }
          } else {
            let vo = qOff(bh, j - uniforms.P) + 2 * uniforms.C;
            for (var d = 0; d < ${dm.D}; d++) { acc[d] = fma(p, qkv[vo + d], acc[d]); }
          }
        }
        let ro = oOff(bh, i);
        for (var d = 0; d < ${dm.D}; d++) { result[ro + d] = acc[d]; }`,
    });
  });
  const all = ['qkv', 'pastK', 'pastV', 'o', 'dO', 'lse'];
  // dq over all S keys, dk and dv of the current keys, in one dispatch into dqkv [B, T, 3C].
  reg(ATT_PAST_DQKV, (i, be, a) => {
    const dm = dimsOf(i, a);
    const masked = !!i.keyMask;
    return launchPast(be, dm, a.scale, i, {
      name: 'dqkv',
      vars: all,
      outputShape: i.qkv!.shape,
      threads: 3 * dm.BH * dm.T,
      needs: BWD,
      main: `
        if (index >= uniforms.rows) { return; }
        let rowsPerPart = uniforms.rows / 3;
        let part = index / rowsPerPart;
        let r = index - part * rowsPerPart;
        let bh = r / uniforms.T;
        let t = r - bh * uniforms.T;
        if (part == 0) {
          let i = t;
          let di = deltaOf(bh, i);
          let li = rowLse(bh, i);
          var acc: array<f32, ${dm.D}>;
          ${pastKeyLoop(masked)}
            let p = prob(score(bh, i, j), li);
            let ds = p * (dotDoV(bh, i, j) - di);
            for (var d = 0; d < ${dm.D}; d++) { acc[d] = fma(ds, kAt(bh, j, d), acc[d]); }
          }
          let w = qOff(bh, i);
          for (var d = 0; d < ${dm.D}; d++) { result[w + d] = acc[d] * uniforms.scale; }
        } else if (part == 1) {
          let j = uniforms.P + t;${pastKeyGrad(dm.D, masked, true, 'qOff(bh, t) + uniforms.C', true)}
        } else {
          let j = uniforms.P + t;${pastKeyGrad(dm.D, masked, false, 'qOff(bh, t) + 2 * uniforms.C', false)}
        }`,
    });
  });
  // A thread per past key row (B H P of them), each summing over all T queries (every query sees
  // every past key).
  const pastRow = `
        if (index >= uniforms.rows) { return; }
        let bh = index / uniforms.P;
        let j = index - bh * uniforms.P;`;
  reg(ATT_PAST_DK, (i, be, a) => {
    const dm = dimsOf(i, a);
    return launchPast(be, dm, a.scale, i, {
      name: 'dpastK',
      vars: all,
      outputShape: i.pastK!.shape,
      threads: dm.BH * dm.P,
      needs: BWD,
      main: `${pastRow}${pastKeyGrad(dm.D, !!i.keyMask, true, 'pastOff(bh, j)', true)}`,
    });
  });
  reg(ATT_PAST_DV, (i, be, a) => {
    const dm = dimsOf(i, a);
    return launchPast(be, dm, a.scale, i, {
      name: 'dpastV',
      vars: ['qkv', 'pastK', 'dO', 'lse'],
      outputShape: i.pastK!.shape,
      threads: dm.BH * dm.P,
      needs: OUT,
      main: `${pastRow}${pastKeyGrad(dm.D, !!i.keyMask, false, 'pastOff(bh, j)', false)}`,
    });
  });
}

/** Checks pastK, pastV [B, H, P, D] against qkv [B, T, 3 H D], and the mask against [B, P + T]. */
function pastShapes(
  qkv: tf.Tensor3D,
  pastK: tf.Tensor4D,
  pastV: tf.Tensor4D,
  heads: number,
  keyMask?: tf.Tensor2D,
): void {
  const [B, T, C3] = qkv.shape;
  if (C3 % (3 * heads) !== 0) {
    throw new InternalError(`qkv has ${C3} columns, not 3 x a multiple of ${heads} heads`);
  }
  const D = C3 / 3 / heads;
  const P = pastK.shape[2];
  const want = [B, heads, P, D];
  const fits = (t: tf.Tensor4D): boolean => t.shape.every((n, i) => n === want[i]);
  if (!fits(pastK) || !fits(pastV)) {
    throw new InternalError(
      `past keys [${pastK.shape}] and values [${pastV.shape}] are not [${want}] for qkv [${qkv.shape}]`,
    );
  }
  if (keyMask && (keyMask.shape[0] !== B || keyMask.shape[1] !== P + T)) {
    throw new InternalError(`key mask has shape [${keyMask.shape}] but the keys are [${B}, ${P + T}]`);
  }
}

/**
 * The stock composition with past keys, as gpt2.ts computes it: qkv split into heads, the past
 * concatenated before this call's keys and values, the additive bias (query i sees keys j <= P + i,
 * padded keys MASKED on top: attentionBias), softmax, product, heads merged back to [B, T, C].
 */
export function causalAttentionPackedPastStock(
  qkv: tf.Tensor3D,
  pastK: tf.Tensor4D,
  pastV: tf.Tensor4D,
  heads: number,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  pastShapes(qkv, pastK, pastV, heads, keyMask);
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  const P = pastK.shape[2];
  const S = P + T;
  const split = tf.transpose(tf.reshape(qkv, [B, T, 3, heads, C / heads]), [2, 0, 3, 1, 4]);
  const [q, k, v] = tf.unstack(split, 0) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
  const causal = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = P + i + 1; j < S; j++) causal[i * S + j] = MASKED;
  let bias: tf.Tensor = tf.tensor4d(causal, [1, 1, T, S]);
  if (keyMask)
    bias = tf.add(bias, tf.mul(tf.sub(1, tf.reshape(tf.cast(keyMask, 'float32'), [B, 1, 1, S])), MASKED));
  const kAll = tf.concat([pastK, k], 2);
  const vAll = tf.concat([pastV, v], 2);
  const scores = tf.add(tf.mul(tf.matMul(q, kAll, false, true), scale), bias);
  const y = tf.matMul(tf.softmax(scores, -1), vAll);
  return tf.reshape(tf.transpose(y, [0, 2, 1, 3]), [B, T, C]);
}

/**
 * Causal attention from c_attn's output qkv [B, T, 3C] after P past keys and values pastK, pastV
 * [B, H, P, D] (prefix tuning, P-tuning v2): query i (absolute position P + i) sees every past key
 * and this call's keys up to i, padded keys masked when `keyMask` [B, P + T] is given. Gradients for
 * qkv, pastK and pastV. On webgpu 2 dispatches forward and 3 backward (dqkv, dpastK, dpastV), reading
 * the past in place (no concatenation, no transposes); elsewhere the stock composition.
 */
export function causalAttentionPackedPast(
  qkv: tf.Tensor3D,
  pastK: tf.Tensor4D,
  pastV: tf.Tensor4D,
  heads: number,
  scale: number,
  keyMask?: tf.Tensor2D,
): tf.Tensor3D {
  pastShapes(qkv, pastK, pastV, heads, keyMask);
  if (!onWebGpu()) return causalAttentionPackedPastStock(qkv, pastK, pastV, heads, scale, keyMask);
  registerPackedPast();
  const km = keyMaskFor(keyMask, qkv.shape[0], qkv.shape[1] + pastK.shape[2]);
  const attrs = { scale, heads };
  const f = tf.customGrad((x, pk, pv, save) => {
    const [packed, kk, vv] = [x, pk, pv] as tf.Tensor[];
    const m = maskInput(km);
    const lse = runKernel(ATT_PAST_LSE, { qkv: packed!, pastK: kk!, ...m }, attrs);
    const o = runKernel(
      ATT_PAST_OUT,
      { qkv: packed!, pastK: kk!, pastV: vv!, lse, ...m },
      attrs,
    ) as tf.Tensor3D;
    (save as tf.GradSaveFunc)([packed!, kk!, vv!, o, lse, ...(km ? [km] : [])]);
    return {
      value: o,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, os, ls, ms] = saved as tf.Tensor[];
        const sm = maskInput(ms);
        const dO = dy as tf.Tensor;
        const all = { qkv: qs!, pastK: ks!, pastV: vs!, o: os!, dO, lse: ls!, ...sm };
        return [
          runKernel(ATT_PAST_DQKV, all, attrs),
          runKernel(ATT_PAST_DK, all, attrs),
          runKernel(ATT_PAST_DV, { qkv: qs!, pastK: ks!, dO, lse: ls!, ...sm }, attrs),
        ];
      },
    };
  }) as (qkv: tf.Tensor, pastK: tf.Tensor, pastV: tf.Tensor) => tf.Tensor3D;
  return f(qkv, pastK, pastV);
}
