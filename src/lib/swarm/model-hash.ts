/**
 * The identity of a model in the swarm: SHA-256 over its config and every weight, so peers of two
 * different checkpoints (or of the same architecture with other weights) are never chained. Each
 * weight is hashed on its own and the digests hashed together with the names, so no copy of the
 * whole model is ever made. A peer that holds only its span's weights is given the hash by whoever
 * gave it the weights.
 */
import type { Gpt2Model } from '../model/gpt2';
import { toHfConfigJson } from '../model/config';

const hex = (b: ArrayBuffer): string =>
  [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');

async function sha256(data: Uint8Array): Promise<ArrayBuffer> {
  return crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>);
}

export async function modelHash(model: Gpt2Model): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [enc.encode(JSON.stringify(toHfConfigJson(model.config)))];
  for (const name of [...model.weights.keys()].sort()) {
    const w = model.weights.get(name)!;
    const data = (await w.data()) as Float32Array;
    parts.push(enc.encode(`${name}:${w.shape.join('x')}:`));
    parts.push(new Uint8Array(await sha256(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))));
  }
  const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return hex(await sha256(all));
}
