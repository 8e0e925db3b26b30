import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SwarmProtocolError } from '../errors';
import type { Request, Tensors } from './protocol';
import { decodeMessage, encodeMessage, SWARM_PROTOCOL_VERSION } from './protocol';

const t = (shape: number[], fill = (i: number) => i * 0.5 - 1): { shape: number[]; data: Float32Array } => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => fill(i)) };
};

const forward = (tensors: Tensors, fields: Partial<Request> = {}): Uint8Array =>
  encodeMessage({ kind: 'forward', id: 7, start: 2, end: 4, ...fields } as Request, tensors);

const refuses = (bytes: Uint8Array, pattern: RegExp, limits = {}): void => {
  let err: unknown;
  try {
    decodeMessage(bytes, 'request', limits);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SwarmProtocolError);
  expect((err as Error).message).toMatch(pattern);
};

describe('swarm protocol', () => {
  it('round-trips a forward with per-block prompts bit-exactly, as raw float32 bytes', () => {
    const hidden = t([2, 3, 8], (i) => Math.fround(Math.sin(i) * 1e3));
    const tensors: Tensors = new Map([
      ['hidden', hidden],
      ['pastK.2', t([2, 2, 5, 4])],
      ['pastV.2', t([2, 2, 5, 4])],
      ['pastK.3', t([2, 2, 5, 4])],
      ['pastV.3', t([2, 2, 5, 4])],
    ]);
    const bytes = forward(tensors);
    // The data is 4 bytes a value: no JSON numbers on the wire.
    const values = [...tensors.values()].reduce((a, x) => a + x.data.length, 0);
    expect(bytes.length).toBeLessThan(values * 4 + 400);
    const { header, tensors: back } = decodeMessage(bytes, 'request');
    expect(header).toMatchObject({ kind: 'forward', id: 7, start: 2, end: 4 });
    expect([...back.keys()]).toEqual([...tensors.keys()]);
    for (const [name, x] of tensors) {
      expect(back.get(name)!.shape).toEqual(x.shape);
      expect(Array.from(back.get(name)!.data)).toEqual(Array.from(x.data));
    }
  });

  it('decodes from a misaligned buffer (a WebSocket frame need not start on 4 bytes)', () => {
    const bytes = forward(new Map([['hidden', t([1, 2, 4])]]));
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    expect(Array.from(decodeMessage(shifted, 'request').tensors.get('hidden')!.data)).toEqual(
      Array.from(t([1, 2, 4]).data),
    );
  });

  it('refuses bad framing, versions and kinds with a named error', () => {
    const ok = forward(new Map([['hidden', t([1, 2, 4])]]));
    const bad = ok.slice();
    bad[0] = 0;
    refuses(bad, /PLSW magic/);
    const v2 = ok.slice();
    new DataView(v2.buffer).setUint16(4, SWARM_PROTOCOL_VERSION + 1, true);
    refuses(v2, /protocol version 2/);
    refuses(
      encodeMessage({ kind: 'run-code', id: 1 } as unknown as Request),
      /unknown message kind "run-code"/,
    );
    refuses(ok.subarray(0, ok.length - 4), /runs past the end/);
    const longer = new Uint8Array(ok.length + 4);
    longer.set(ok);
    refuses(longer, /4 bytes after the last tensor/);
  });

  it('refuses wrong dtypes, ranks, shapes, names and non-finite values', () => {
    const json = (h: object, data = new Uint8Array()): Uint8Array => {
      const head = new TextEncoder().encode(JSON.stringify(h));
      const pad = Math.ceil((12 + head.length) / 4) * 4;
      const out = new Uint8Array(pad + data.length);
      out.set([0x50, 0x4c, 0x53, 0x57]);
      new DataView(out.buffer).setUint16(4, 1, true);
      new DataView(out.buffer).setUint32(8, head.length, true);
      out.set(head, 12);
      out.set(data, pad);
      return out;
    };
    const base = { kind: 'forward', id: 1, start: 0, end: 1 };
    refuses(
      json({ ...base, tensors: [{ name: 'hidden', dtype: 'int32', shape: [1] }] }, new Uint8Array(4)),
      /dtype "int32"/,
    );
    refuses(forward(new Map([['hidden', t([2, 4])]])), /rank 2, expected 3/);
    refuses(forward(new Map([['other', t([1, 1, 4])]])), /"hidden" is missing/);
    refuses(
      forward(
        new Map([
          ['hidden', t([1, 1, 4])],
          ['extra', t([1])],
        ]),
      ),
      /unexpected tensor "extra"/,
    );
    refuses(
      json({ ...base, tensors: [{ name: '__proto__', dtype: 'float32', shape: [1] }] }, new Uint8Array(4)),
      /no valid name/,
    );
    refuses(forward(new Map([['hidden', t([1, 2, 4], (i) => (i === 3 ? NaN : 0))]])), /value 3 is NaN/);
    refuses(forward(new Map([['hidden', t([1, 2, 4], () => Infinity)]])), /only finite/);
    refuses(
      forward(new Map([['hidden', t([1, 2, 4])]]), { start: 3, end: 3 } as Partial<Request>),
      /span 3:3 is empty/,
    );
  });

  it('refuses prompts that do not agree with the hidden states or the span', () => {
    const h = t([2, 3, 8]);
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['pastK.2', t([2, 2, 5, 4])],
          ['pastV.2', t([2, 2, 5, 4])],
        ]),
      ),
      /prompts for 1 of the 2 blocks/,
    );
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['pastK.2', t([2, 2, 5, 4])],
        ]),
      ),
      /only one of pastK.2 and pastV.2/,
    );
    const wrongBatch = new Map([
      ['hidden', h],
      ['pastK.2', t([1, 2, 5, 4])],
      ['pastV.2', t([1, 2, 5, 4])],
      ['pastK.3', t([1, 2, 5, 4])],
      ['pastV.3', t([1, 2, 5, 4])],
    ]);
    refuses(forward(wrongBatch), /batch 1 but "hidden" has 2/);
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['pastK.9', t([2, 2, 5, 4])],
        ]),
      ),
      /unexpected tensor "pastK.9"/,
    );
    const step = encodeMessage(
      { kind: 'step', id: 1, session: 's1', start: 0, end: 1, position: 4 },
      new Map([
        ['hidden', t([1, 1, 8])],
        ['pastK.0', t([1, 2, 2, 4])],
        ['pastV.0', t([1, 2, 2, 4])],
      ]),
    );
    refuses(step, /first step of a session/);
    const badSession = encodeMessage({ kind: 'close', id: 1, session: '../../etc' });
    refuses(badSession, /"session" must be a short string/);
  });

  it('checks client-held LoRA weights: pairs, rank-r shapes and the "lora" field', () => {
    const h = t([1, 2, 8]);
    const lora = { scaling: 2, dropout: 0.1, seed: 3, training: true };
    const ok = forward(
      new Map([
        ['hidden', h],
        ['loraA0.2', t([8, 4])],
        ['loraB0.2', t([4, 24])],
      ]),
      { lora } as Partial<Request>,
    );
    expect(decodeMessage(ok, 'request').header).toMatchObject({ lora });
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['loraA0.2', t([8, 4])],
        ]),
        { lora } as Partial<Request>,
      ),
      /only one of loraA0.2 and loraB0.2/,
    );
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['loraA0.2', t([8, 4])],
          ['loraB0.2', t([3, 24])],
        ]),
      ),
      /are not \[in, r\] and \[r, out\]/,
    );
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['loraA0.2', t([8, 4])],
          ['loraB0.2', t([4, 24])],
        ]),
      ),
      /need the "lora" field/,
    );
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['loraA7.2', t([8, 4])],
          ['loraB7.2', t([4, 24])],
        ]),
        {},
      ),
      /unexpected tensor "loraA7.2"/,
    );
    refuses(
      forward(
        new Map([
          ['hidden', h],
          ['loraA0.2', t([8, 4])],
          ['loraB0.2', t([4, 24])],
        ]),
        { lora: { ...lora, dropout: 1 } } as Partial<Request>,
      ),
      /dropout 1 must be below 1/,
    );
    refuses(
      forward(new Map([['hidden', h]]), { lora } as Partial<Request>),
      /"lora" is set but no LoRA tensors came/,
    );
  });

  it('refuses what is over the limits before reading it', () => {
    const bytes = forward(new Map([['hidden', t([4, 8, 8])]]));
    refuses(bytes, /over the limit of 100/, { maxMessageBytes: 100 });
    refuses(bytes, /over the limit of 16 elements/, { maxElements: 16 });
    refuses(bytes, /batch 4 is over the limit of 2/, { maxBatch: 2 });
    refuses(bytes, /8 positions are over the limit of 4/, { maxTokens: 4 });
  });

  it('refuses a reply where a request is expected, and checks replies', () => {
    const reply = encodeMessage({ kind: 'forward', id: 3, ok: true }, new Map([['hidden', t([1, 1, 4])]]));
    refuses(reply, /a reply was sent where a request was expected/);
    expect(decodeMessage(reply, 'reply').header).toMatchObject({ kind: 'forward', ok: true });
    const noGrad = encodeMessage({ kind: 'backward', id: 3, ok: true }, new Map([['hidden', t([1, 1, 4])]]));
    expect(() => decodeMessage(noGrad, 'reply')).toThrow(/"gradIn" is missing/);
    const err = encodeMessage({
      kind: 'step',
      id: 3,
      ok: false,
      error: { name: 'SwarmSessionError', message: 'gone' },
    });
    expect(decodeMessage(err, 'reply').header).toMatchObject({
      ok: false,
      error: { name: 'SwarmSessionError' },
    });
  });

  it('judges a span of a million blocks by the tensors it carries, in milliseconds (fuzz finding)', () => {
    // Before: the prompt and LoRA checks walked every block of the span, 5 x 2^20 map lookups: 1.5 s a frame.
    const lora = { scaling: 1, dropout: 0, seed: 1, training: true };
    const wide = forward(new Map([['hidden', t([1, 2, 8])]]), {
      start: 0,
      end: 1 << 20,
      lora,
    } as Partial<Request>);
    const t0 = performance.now();
    refuses(wide, /"lora" is set but no LoRA tensors came/);
    const ok = forward(new Map([['hidden', t([1, 2, 8])]]), { start: 0, end: 1 << 20 } as Partial<Request>);
    expect(decodeMessage(ok, 'request').header).toMatchObject({ start: 0, end: 1 << 20 });
    // Prompts for one block of a wide span are still counted against the whole span.
    const some = forward(
      new Map([
        ['hidden', t([1, 2, 8])],
        ['pastK.5', t([1, 2, 3, 4])],
        ['pastV.5', t([1, 2, 3, 4])],
      ]),
      { start: 0, end: 1 << 20 } as Partial<Request>,
    );
    refuses(some, /prompts for 1 of the 1048576 blocks/);
    expect(performance.now() - t0).toBeLessThan(100);
  });

  it('names deeply nested header values briefly instead of overflowing the stack (fuzz finding)', () => {
    // Header text with a value nested 10,000-20,000 levels (under the 64 KiB header limit): JSON.parse reads it; stringify could not write it.
    const frame = (headerText: string): Uint8Array => {
      const json = new TextEncoder().encode(headerText);
      const out = new Uint8Array(Math.ceil((12 + json.length) / 4) * 4);
      out.set([0x50, 0x4c, 0x53, 0x57]);
      new DataView(out.buffer).setUint16(4, SWARM_PROTOCOL_VERSION, true);
      new DataView(out.buffer).setUint32(8, json.length, true);
      out.set(json, 12);
      return out;
    };
    const deepArray = '['.repeat(20_000) + '0' + ']'.repeat(20_000);
    const deepObject = '{"a":'.repeat(10_000) + '0' + '}'.repeat(10_000);
    // Before: JSON.stringify or String() of the value in the message threw RangeError.
    refuses(frame(`{"kind":${deepArray},"id":1}`), /unknown message kind \[+\.\.\.\]+/);
    refuses(frame(`{"kind":"hello","id":${deepObject}}`), /field "id" must be an integer/);
    refuses(
      frame(
        `{"kind":"forward","id":1,"tensors":[{"name":"hidden","dtype":"float32","shape":[${deepArray}]}]}`,
      ),
      /shape \[\[+\.\.\.\]+\] must hold positive integers/,
    );
    refuses(
      frame(`{"kind":"forward","id":1,"tensors":[{"name":"hidden","dtype":${deepObject},"shape":[1]}]}`),
      /dtype \{"a":/,
    );
  });

  it('never fails with anything but SwarmProtocolError on mutated frames (fuzz)', () => {
    const good = encodeMessage(
      { kind: 'step', id: 5, session: 'abc', start: 0, end: 2, position: 0 },
      new Map([
        ['hidden', t([1, 2, 8])],
        ['pastK.0', t([1, 2, 3, 4])],
        ['pastV.0', t([1, 2, 3, 4])],
        ['pastK.1', t([1, 2, 3, 4])],
        ['pastV.1', t([1, 2, 3, 4])],
      ]),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.nat(good.length),
        (edits, cut) => {
          const b = good.slice(0, Math.max(cut, 1));
          for (const [at, v] of edits) if (at < b.length) b[at] = v;
          try {
            decodeMessage(b, 'request');
          } catch (e) {
            if (!(e instanceof SwarmProtocolError)) throw e;
          }
        },
      ),
      { numRuns: 500, seed: 15 },
    );
  });
});
