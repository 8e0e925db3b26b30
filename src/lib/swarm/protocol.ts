/**
 * The swarm's wire protocol: one typed, versioned message format for every peer (a worker in the
 * tab, another tab, a Node process behind a WebSocket). A message is one binary frame:
 *
 *   bytes 0-3   magic "PLSW"
 *   bytes 4-5   protocol version (u16, little-endian)
 *   bytes 6-7   zero
 *   bytes 8-11  header length H (u32, little-endian)
 *   12..12+H    header: UTF-8 JSON {kind, id, ...fields, tensors: [{name, dtype, shape}]}
 *   padding     zeros up to a multiple of 4
 *   data        each tensor's raw float32 values (little-endian), in header order
 *
 * Tensors travel as raw bytes, never as JSON numbers: a [1, 64, 768] activation is 196 KiB on the
 * wire, not a megabyte of decimal text, and it arrives bit-exact. `decodeMessage` checks everything
 * before anything is computed (kind, version, field types, dtypes, ranks, shapes and their
 * agreement, sizes under limits, finite values): a peer runs no received code and trusts no size.
 * The ideas follow Petals' client (src/petals/client/): forward and backward over a span of blocks,
 * inference steps on a per-session KV cache, and the client sending its own prompts per block.
 */
import type { SerializedError } from '../errors';
import { SwarmProtocolError } from '../errors';
import { showValue } from '../util/show';

export const SWARM_PROTOCOL_VERSION = 1;
const MAGIC = [0x50, 0x4c, 0x53, 0x57]; // "PLSW"
const PREFIX_BYTES = 12;

/** A tensor on the wire: float32 only (the activations and gradients a span exchanges). */
export interface WireTensor {
  shape: number[];
  data: Float32Array;
}

export type Tensors = Map<string, WireTensor>;

/** What a peer says about itself: to the directory (announce) and to a client (hello). */
export interface PeerInfo {
  peerId: string;
  /** SHA-256 of the model's config and weights (model-hash.ts): peers of other models are not mixed. */
  modelHash: string;
  /** Blocks start..end-1 (Petals' --block_indices start:end). */
  start: number;
  end: number;
  /** Measured tokens per second through the whole span (a forward of a reference batch). */
  throughput: number;
  /** Open inference sessions plus requests in flight: a busy peer is chosen less. */
  load: number;
  /** How a client reaches it (ws://host:port, or a name the host resolves for in-tab peers). */
  address: string;
}

/**
 * A client-held LoRA adapter sent with a span (Petals' client-side LoRA, taken further): tensors
 * `loraA{m}.{i}` [in, r] and `loraB{m}.{i}` [r, out] for block i and module m (the index in
 * LORA_MODULES), applied as x W + b + (dropout(x) A * scaling) B. The dropout mask comes from the
 * seed and the layer's name, so the peer draws the client's mask; the backward returns
 * `dLoraA{m}.{i}`, `dLoraB{m}.{i}`.
 */
export interface LoraFields {
  scaling: number;
  dropout: number;
  seed: number;
  /** Dropout applies (a training forward and its backward); false in generation. */
  training: boolean;
}

/** The linear layers of a block, in the order of the `m` in LoRA tensor names. */
export const LORA_MODULES = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'] as const;

/** Requests a client (or a peer, to the directory) sends. Tensor names are listed with each. */
export interface SwarmRequests {
  /** Who are you? `token` when the peer requires one. */
  hello: { token?: string };
  /** A peer tells the directory it serves a span. */
  announce: { peer: PeerInfo };
  /** A peer's periodic "still here", with its current load and throughput. */
  heartbeat: { peerId: string; load: number; throughput: number };
  /** The live peers the directory knows, for one model. */
  list: { modelHash: string };
  /**
   * Blocks start..end-1 on `hidden` [B, T, C]; optional per-block prompts `pastK.i`, `pastV.i`
   * [B, H, P, D] (deep prompts: prefix tuning, P-tuning v2) and a key mask `keyMask` [B, P + T].
   */
  forward: { start: number; end: number; lora?: LoraFields };
  /**
   * The same inputs plus `gradOut` [B, T, C] (d loss / d output): the peer recomputes its blocks on
   * a tape and returns `gradIn` and, for each per-block prompt sent, `dPastK.i`, `dPastV.i`.
   */
  backward: { start: number; end: number; lora?: LoraFields };
  /**
   * One generation step on session `session`: `hidden` [B, T, C] are the new positions, `position`
   * the number already in the peer's cache (0 opens the session; prompts come with position 0 only).
   */
  step: { session: string; start: number; end: number; position: number; lora?: LoraFields };
  /** Frees a session's cache. */
  close: { session: string };
}

/** The one reply each request gets (or `error`). */
export interface SwarmReplies {
  hello: { peer: PeerInfo };
  announce: { ok: true };
  heartbeat: { ok: true };
  list: { peers: PeerInfo[] };
  /** `hidden` [B, T, C]. */
  forward: Record<never, never>;
  /** `gradIn` [B, T, C], and `dPastK.i`, `dPastV.i` when prompts were sent. */
  backward: Record<never, never>;
  /** `hidden` [B, T, C] for the new positions; `length` is the cache length after the step. */
  step: { length: number };
  close: { ok: true };
}

export type RequestKind = keyof SwarmRequests;
export const REQUEST_KINDS: readonly RequestKind[] = [
  'hello',
  'announce',
  'heartbeat',
  'list',
  'forward',
  'backward',
  'step',
  'close',
];

/** A request as it travels: the kind fixes its fields, `id` pairs it with its reply. */
export type Request<K extends RequestKind = RequestKind> = {
  [P in K]: { kind: P; id: number } & SwarmRequests[P];
}[K];

/** A reply: the same kind and id, `ok` true with the kind's fields, or `ok` false with the error. */
export type Reply<K extends RequestKind = RequestKind> =
  | { [P in K]: { kind: P; id: number; ok: true } & SwarmReplies[P] }[K]
  | { kind: K; id: number; ok: false; error: SerializedError };

export interface Message<H> {
  header: H;
  tensors: Tensors;
}

/** What a receiver accepts; the defaults suit a GPT-2 small span on a LAN. */
export interface ProtocolLimits {
  maxMessageBytes: number;
  maxHeaderBytes: number;
  maxTensors: number;
  /** Elements of any one tensor. */
  maxElements: number;
  /** Batch, sequence and prompt lengths. */
  maxBatch: number;
  maxTokens: number;
}

export const DEFAULT_LIMITS: ProtocolLimits = {
  maxMessageBytes: 256 * 1024 * 1024,
  maxHeaderBytes: 64 * 1024,
  maxTensors: 4 * 256 + 4,
  maxElements: 64 * 1024 * 1024,
  maxBatch: 256,
  maxTokens: 8192,
};

const TENSOR_NAME = /^[A-Za-z][A-Za-z0-9]*(\.[0-9]+)?$/;
const SESSION_ID = /^[A-Za-z0-9_-]{1,64}$/;

// ---------------------------------------------------------------------------------------------
// Encoding

export function encodeMessage(header: Request | Reply, tensors: Tensors = new Map()): Uint8Array {
  const descs = [...tensors].map(([name, t]) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new SwarmProtocolError(
        `tensor ${name} has ${t.data.length} values but shape [${t.shape}] needs ${n}`,
      );
    }
    return { name, dtype: 'float32', shape: t.shape };
  });
  const json = new TextEncoder().encode(JSON.stringify({ ...header, tensors: descs }));
  const headEnd = PREFIX_BYTES + json.length;
  const dataStart = Math.ceil(headEnd / 4) * 4;
  let total = dataStart;
  for (const t of tensors.values()) total += t.data.length * 4;
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint16(4, SWARM_PROTOCOL_VERSION, true);
  view.setUint32(8, json.length, true);
  out.set(json, PREFIX_BYTES);
  let at = dataStart;
  for (const t of tensors.values()) {
    // Float32Array is in the platform's byte order; every platform tfjs runs on is little-endian.
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding and validation

const fail = (msg: string): never => {
  throw new SwarmProtocolError(msg);
};

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function intField(h: Record<string, unknown>, key: string, min: number, max: number): number {
  const v = h[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(
      `${String(h.kind)} message: field "${key}" must be an integer in [${min}, ${max}], got ${showValue(v)}`,
    );
  }
  return v as number;
}

function numField(h: Record<string, unknown>, key: string): number {
  const v = h[key];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    fail(`${String(h.kind)} message: field "${key}" must be a finite number >= 0, got ${showValue(v)}`);
  }
  return v as number;
}

function strField(h: Record<string, unknown>, key: string, pattern?: RegExp, optional = false): void {
  const v = h[key];
  if (optional && v === undefined) return;
  if (typeof v !== 'string' || v.length > 512 || (pattern && !pattern.test(v))) {
    fail(
      `${String(h.kind)} message: field "${key}" must be a short string${pattern ? ` matching ${pattern}` : ''}`,
    );
  }
}

function checkPeerInfo(h: Record<string, unknown>, p: unknown, where: string): void {
  if (!isRecord(p)) return fail(`${where}: "peer" must be an object`);
  const ph = { ...p, kind: where };
  strField(ph, 'peerId', /^[A-Za-z0-9_.:-]{1,128}$/);
  strField(ph, 'modelHash', /^[0-9a-f]{64}$/);
  strField(ph, 'address');
  const start = intField(ph, 'start', 0, 1 << 20);
  const end = intField(ph, 'end', 1, 1 << 20);
  if (end <= start) fail(`${where}: span ${start}:${end} is empty; end must be greater than start`);
  numField(ph, 'throughput');
  numField(ph, 'load');
  void h;
}

/** Checks a span's fields; returns them. */
function span(h: Record<string, unknown>): [number, number] {
  const start = intField(h, 'start', 0, 1 << 20);
  const end = intField(h, 'end', 1, 1 << 20);
  if (end <= start)
    fail(`${String(h.kind)} message: span ${start}:${end} is empty; end must be greater than start`);
  return [start, end];
}

function want(t: Tensors, name: string, rank: number, kind: string): WireTensor {
  const x = t.get(name);
  if (!x) return fail(`${kind} message: tensor "${name}" is missing`);
  if (x.shape.length !== rank)
    fail(`${kind} message: tensor "${name}" has rank ${x.shape.length}, expected ${rank}`);
  return x;
}

/**
 * The blocks of start..end-1 that some tensor names (by `pattern`'s first group), in order. The
 * checks below walk these, not the span: a span may claim a million blocks while a frame holds at
 * most maxTensors tensors, and walking the span cost a peer a second per message.
 */
function namedBlocks(t: Tensors, pattern: RegExp, start: number, end: number): number[] {
  const blocks = new Set<number>();
  for (const name of t.keys()) {
    const m = pattern.exec(name);
    const i = m ? Number(m[1]) : -1;
    if (i >= start && i < end) blocks.add(i);
  }
  return [...blocks].sort((a, b) => a - b);
}

const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The hidden states, optional per-block prompts and key mask of a forward, backward or step,
 * checked against each other: names are exactly those the kind allows, prompts come for every
 * block of the span or for none, and every batch and length agrees.
 */
function checkBlockInputs(
  h: Record<string, unknown>,
  t: Tensors,
  limits: ProtocolLimits,
  extra: string[],
  prefix = 'past',
): void {
  const kind = String(h.kind);
  const [start, end] = span(h);
  const hidden = want(t, 'hidden', 3, kind);
  const [B, T, C] = hidden.shape as [number, number, number];
  if (B > limits.maxBatch) fail(`${kind} message: batch ${B} is over the limit of ${limits.maxBatch}`);
  if (T > limits.maxTokens) fail(`${kind} message: ${T} positions are over the limit of ${limits.maxTokens}`);
  for (const e of extra) {
    const g = want(t, e, 3, kind);
    if (!same(g.shape, hidden.shape))
      fail(`${kind} message: "${e}" is [${g.shape}] but "hidden" is [${hidden.shape}]`);
  }
  const allowed = new Set(['hidden', 'keyMask', ...extra]);
  let P = -1;
  let prompts = 0;
  for (const i of namedBlocks(t, new RegExp(`^${prefix}[KV]\\.(\\d+)$`), start, end)) {
    const k = t.get(`${prefix}K.${i}`);
    const v = t.get(`${prefix}V.${i}`);
    if (!k && !v) continue;
    if (!k || !v) fail(`${kind} message: block ${i} has only one of ${prefix}K.${i} and ${prefix}V.${i}`);
    for (const [name, x] of [
      [`${prefix}K.${i}`, k!],
      [`${prefix}V.${i}`, v!],
    ] as const) {
      if (x.shape.length !== 4)
        fail(`${kind} message: "${name}" has rank ${x.shape.length}, expected 4 [B, H, P, D]`);
      const [pb, ph, pp, pd] = x.shape as [number, number, number, number];
      if (pb !== B) fail(`${kind} message: "${name}" has batch ${pb} but "hidden" has ${B}`);
      if (ph * pd !== C)
        fail(`${kind} message: "${name}" has ${ph} heads of ${pd}, which is not the width ${C}`);
      if (P >= 0 && pp !== P) fail(`${kind} message: "${name}" has ${pp} prompt positions, others have ${P}`);
      P = pp;
      allowed.add(name);
    }
    prompts++;
  }
  if (prompts !== 0 && prompts !== end - start) {
    fail(
      `${kind} message: prompts for ${prompts} of the ${end - start} blocks of ${start}:${end}; send them for every block or none`,
    );
  }
  if (P > limits.maxTokens)
    fail(`${kind} message: ${P} prompt positions are over the limit of ${limits.maxTokens}`);
  checkLora(h, t, start, end, allowed);
  const mask = t.get('keyMask');
  if (mask) {
    const S = Math.max(P, 0) + T;
    if (!same(mask.shape, [B, S]) && kind !== 'step') {
      fail(`${kind} message: "keyMask" is [${mask.shape}] but the keys are [${B}, ${S}]`);
    }
    if (kind === 'step')
      fail('step message: a key mask is not supported in generation steps; send unpadded rows');
  }
  for (const name of t.keys()) if (!allowed.has(name)) fail(`${kind} message: unexpected tensor "${name}"`);
}

/** LoRA tensors come in A/B pairs of rank-r shapes, with the `lora` field; adds their names to `allowed`. */
function checkLora(
  h: Record<string, unknown>,
  t: Tensors,
  start: number,
  end: number,
  allowed: Set<string>,
): void {
  const kind = String(h.kind);
  let pairs = 0;
  for (const i of namedBlocks(t, /^lora[AB]\d+\.(\d+)$/, start, end)) {
    for (let m = 0; m < LORA_MODULES.length; m++) {
      const a = t.get(`loraA${m}.${i}`);
      const b = t.get(`loraB${m}.${i}`);
      if (!a && !b) continue;
      if (!a || !b)
        return fail(`${kind} message: block ${i} has only one of loraA${m}.${i} and loraB${m}.${i}`);
      if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[0]) {
        fail(
          `${kind} message: loraA${m}.${i} [${a.shape}] and loraB${m}.${i} [${b.shape}] are not [in, r] and [r, out]`,
        );
      }
      allowed.add(`loraA${m}.${i}`).add(`loraB${m}.${i}`);
      pairs++;
    }
  }
  if (pairs === 0) {
    if (h.lora !== undefined) fail(`${kind} message: "lora" is set but no LoRA tensors came`);
    return;
  }
  const l = h.lora;
  if (!isRecord(l))
    return fail(`${kind} message: LoRA tensors need the "lora" field {scaling, dropout, seed}`);
  const lr = { ...l, kind };
  numField(lr, 'scaling');
  const d = numField(lr, 'dropout');
  if (d >= 1) fail(`${kind} message: LoRA dropout ${d} must be below 1`);
  intField(lr, 'seed', 0, 2 ** 32 - 1);
  if (typeof l.training !== 'boolean') fail(`${kind} message: "lora.training" must be true or false`);
}

function checkRequest(h: Record<string, unknown>, t: Tensors, limits: ProtocolLimits): void {
  const kind = h.kind as RequestKind;
  const noTensors = (): void => {
    if (t.size) fail(`${kind} message: carries no tensors, got ${t.size}`);
  };
  switch (kind) {
    case 'hello':
      strField(h, 'token', undefined, true);
      return noTensors();
    case 'announce':
      checkPeerInfo(h, h.peer, 'announce message');
      return noTensors();
    case 'heartbeat':
      strField(h, 'peerId', /^[A-Za-z0-9_.:-]{1,128}$/);
      numField(h, 'load');
      numField(h, 'throughput');
      return noTensors();
    case 'list':
      strField(h, 'modelHash', /^[0-9a-f]{64}$/);
      return noTensors();
    case 'forward':
      return checkBlockInputs(h, t, limits, []);
    case 'backward':
      return checkBlockInputs(h, t, limits, ['gradOut']);
    case 'step':
      strField(h, 'session', SESSION_ID);
      intField(h, 'position', 0, limits.maxTokens);
      checkBlockInputs(h, t, limits, []);
      if ((h.position as number) > 0 && (t.has(`pastK.${String(h.start)}`) || h.lora !== undefined)) {
        fail(
          'step message: prompts and LoRA weights come with the first step of a session (position 0) only',
        );
      }
      return;
    case 'close':
      strField(h, 'session', SESSION_ID);
      return noTensors();
  }
}

function checkReply(h: Record<string, unknown>, t: Tensors): void {
  const kind = h.kind as RequestKind;
  if (h.ok === false) {
    const e = h.error;
    if (!isRecord(e) || typeof e.name !== 'string' || typeof e.message !== 'string') {
      fail(`${kind} reply: "error" must be {name, message}`);
    }
    return;
  }
  if (h.ok !== true) fail(`${kind} reply: "ok" must be true or false`);
  const only = (names: string[]): void => {
    for (const n of t.keys()) {
      if (!names.includes(n) && !/^(dPast[KV]|dLora[AB][0-3])\.\d+$/.test(n)) {
        fail(`${kind} reply: unexpected tensor "${n}"`);
      }
    }
  };
  switch (kind) {
    case 'hello':
      return checkPeerInfo(h, h.peer, 'hello reply');
    case 'list':
      if (!Array.isArray(h.peers)) fail('list reply: "peers" must be an array');
      (h.peers as unknown[]).forEach((p) => checkPeerInfo(h, p, 'list reply'));
      return;
    case 'forward':
      want(t, 'hidden', 3, 'forward reply');
      return only(['hidden']);
    case 'backward':
      want(t, 'gradIn', 3, 'backward reply');
      return only(['gradIn']);
    case 'step':
      intField(h, 'length', 1, 1 << 20);
      want(t, 'hidden', 3, 'step reply');
      return only(['hidden']);
    case 'announce':
    case 'heartbeat':
    case 'close':
      return;
  }
}

/**
 * Parses and validates one frame. `expect` is 'request' on a peer and 'reply' on a client.
 * Every fault is a SwarmProtocolError naming what is wrong; nothing in the frame is executed.
 */
export function decodeMessage(
  bytes: Uint8Array,
  expect: 'request',
  limits?: Partial<ProtocolLimits>,
): Message<Request>;
export function decodeMessage(
  bytes: Uint8Array,
  expect: 'reply',
  limits?: Partial<ProtocolLimits>,
): Message<Reply>;
export function decodeMessage(
  bytes: Uint8Array,
  expect: 'request' | 'reply',
  partial: Partial<ProtocolLimits> = {},
): Message<Request | Reply> {
  const limits = { ...DEFAULT_LIMITS, ...partial };
  if (bytes.length > limits.maxMessageBytes) {
    fail(`message of ${bytes.length} bytes is over the limit of ${limits.maxMessageBytes}`);
  }
  if (bytes.length < PREFIX_BYTES || MAGIC.some((b, i) => bytes[i] !== b)) {
    fail('not a swarm message (no PLSW magic): is this peer speaking another protocol?');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(4, true);
  if (version !== SWARM_PROTOCOL_VERSION) {
    fail(
      `protocol version ${version}, this peer speaks ${SWARM_PROTOCOL_VERSION}: run the same PEFT Lab version on both sides`,
    );
  }
  const headLen = view.getUint32(8, true);
  if (headLen > limits.maxHeaderBytes)
    fail(`header of ${headLen} bytes is over the limit of ${limits.maxHeaderBytes}`);
  if (PREFIX_BYTES + headLen > bytes.length)
    fail(`header of ${headLen} bytes runs past the end of the message`);
  let raw: unknown;
  try {
    raw = JSON.parse(
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headLen)),
    );
  } catch {
    fail('the header is not UTF-8 JSON');
  }
  if (!isRecord(raw)) return fail('the header must be a JSON object');
  const h = raw;
  if (typeof h.kind !== 'string' || !(REQUEST_KINDS as readonly string[]).includes(h.kind)) {
    fail(`unknown message kind ${showValue(h.kind)}; known: ${REQUEST_KINDS.join(', ')}`);
  }
  intField(h, 'id', 0, Number.MAX_SAFE_INTEGER);
  const descs = h.tensors ?? [];
  if (!Array.isArray(descs)) return fail(`${h.kind as string} message: "tensors" must be an array`);
  if (descs.length > limits.maxTensors)
    fail(`${descs.length} tensors are over the limit of ${limits.maxTensors}`);
  const tensors: Tensors = new Map();
  let at = Math.ceil((PREFIX_BYTES + headLen) / 4) * 4;
  for (const d of descs as unknown[]) {
    if (!isRecord(d) || typeof d.name !== 'string' || !TENSOR_NAME.test(d.name)) {
      fail(`${h.kind as string} message: a tensor has no valid name`);
    }
    const { name, dtype, shape } = d as { name: string; dtype: unknown; shape: unknown };
    if (dtype !== 'float32')
      fail(`tensor "${name}": dtype ${showValue(dtype)} is not accepted; only float32 travels`);
    if (!Array.isArray(shape) || shape.length < 1 || shape.length > 4)
      fail(`tensor "${name}": shape must have 1 to 4 dimensions`);
    let n = 1;
    for (const s of shape as unknown[]) {
      if (typeof s !== 'number' || !Number.isInteger(s) || s < 1)
        fail(`tensor "${name}": shape ${showValue(shape)} must hold positive integers`);
      n *= s as number;
      if (n > limits.maxElements)
        fail(`tensor "${name}": ${showValue(shape)} is over the limit of ${limits.maxElements} elements`);
    }
    if (tensors.has(name)) fail(`tensor "${name}" appears twice`);
    if (at + 4 * n > bytes.length) fail(`tensor "${name}": its data runs past the end of the message`);
    // Copied when misaligned: a Float32Array view needs a 4-byte-aligned offset.
    const off = bytes.byteOffset + at;
    const data =
      off % 4 === 0
        ? new Float32Array(bytes.buffer, off, n)
        : new Float32Array(bytes.slice(at, at + 4 * n).buffer);
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(data[i]!))
        fail(`tensor "${name}": value ${i} is ${data[i]}; only finite values are accepted`);
    }
    tensors.set(name, { shape: shape as number[], data });
    at += 4 * n;
  }
  if (at !== bytes.length) fail(`${bytes.length - at} bytes after the last tensor; the message is malformed`);
  delete h.tensors;
  if (expect === 'request') {
    if ('ok' in h) fail(`${h.kind as string}: a reply was sent where a request was expected`);
    checkRequest(h, tensors, limits);
  } else checkReply(h, tensors);
  return { header: h as unknown as Request | Reply, tensors };
}

/** Float32 values of `shape` as a wire tensor (copied, so the caller's buffer may change). */
export function wireTensor(shape: number[], data: Float32Array): WireTensor {
  return { shape: [...shape], data: new Float32Array(data) };
}
