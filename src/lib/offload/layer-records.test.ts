/**
 * The layer pager's records: one per layer (int8 runs also keep one of the float32 originals),
 * every weight 4-byte aligned whatever its shape, read back as written; and a write that fails
 * leaves neither half a set of records nor a paged-out model, with the store's named error.
 */
import 'fake-indexeddb/auto';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { initNodeBackend } from '../backend/node';
import { Gpt2Model } from '../model/gpt2';
import type { Gpt2Config } from '../model/config';
import { StorageError } from '../errors';
import { deleteLabDb } from '../storage/db';
import { IdbPageStore } from './idb-page-store';
import { LayerPager, dequantizeInt8, quantizeInt8 } from './layer-pager';
import { MemoryPageStore } from './page-store';

// Width 3 and inner 5: c_attn is 3 x 9, so an int8 matrix of 27 values is followed by padding.
const ODD: Gpt2Config = {
  vocabSize: 11,
  nPositions: 8,
  nEmbd: 3,
  nLayer: 2,
  nHead: 1,
  nInner: 5,
  layerNormEpsilon: 1e-5,
  bosTokenId: 0,
  eosTokenId: 0,
};

/** A memory store that lists the keys written, and can refuse its nth write as a full disk would. */
class WatchedStore extends MemoryPageStore {
  readonly puts: string[] = [];
  constructor(private readonly failAt = Infinity) {
    super();
  }
  override async put(key: string, bytes: Uint8Array): Promise<void> {
    if (this.puts.length + 1 === this.failAt) throw new StorageError('storage is full: test');
    this.puts.push(key);
    await super.put(key, bytes);
  }
}

async function layerWeights(model: Gpt2Model): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of model.weights) {
    if (/^h\.\d+\./.test(name)) out.set(name, { shape: v.shape, data: (await v.data()) as Float32Array });
  }
  return out;
}

beforeAll(async () => {
  await initNodeBackend('cpu');
});
afterAll(async () => {
  await deleteLabDb('pager-records-test');
});

describe('layer records', () => {
  it.each([false, true])(
    'int8 %s: one record per layer, read back as written, restored exactly',
    async (int8) => {
      const model = Gpt2Model.random(ODD, 3);
      const original = await layerWeights(model);
      const store = new WatchedStore();
      const pager = await LayerPager.create(model, store, {
        budgetBytes: 1e9,
        policy: 'trace',
        prefetch: true,
        int8,
      });
      expect(store.puts).toEqual(
        int8
          ? ['base/h.0#0', 'base/f32/h.0#0', 'base/h.1#0', 'base/f32/h.1#0']
          : ['base/h.0#0', 'base/h.1#0'],
      );
      expect(model.weights.has('h.1.mlp.c_fc.weight')).toBe(false);
      await pager.whole(async () => {
        for (const [name, { shape, data }] of original) {
          const expected =
            int8 && shape.length === 2
              ? dequantizeInt8(quantizeInt8(data, shape[0]!, shape[1]!), shape[0]!, shape[1]!)
              : data;
          expect(await model.w(name).data(), name).toEqual(expected);
        }
      });
      await pager.restore();
      for (const [name, { data }] of original) expect(await model.w(name).data(), name).toEqual(data);
      expect(store.size).toBe(0);
      model.dispose();
    },
  );

  it('a write that fails deletes the records already written and leaves the model whole', async () => {
    const model = Gpt2Model.random(ODD, 4);
    const original = await layerWeights(model);
    const store = new WatchedStore(3); // h.0 and its originals are written, h.1 is refused
    await expect(
      LayerPager.create(model, store, { budgetBytes: 1e9, policy: 'trace', prefetch: true, int8: true }),
    ).rejects.toThrow('storage is full: test');
    expect(store.size).toBe(0);
    for (const [name, { data }] of original) expect(await model.w(name).data(), name).toEqual(data);
    model.dispose();
  });

  it('in IndexedDB, a full disk is named, and no record of the failed run stays', async () => {
    const model = Gpt2Model.random(ODD, 5);
    const original = await layerWeights(model);
    const store = await IdbPageStore.open('offload:records', 'pager-records-test');
    const realPut = IDBObjectStore.prototype.put;
    let calls = 0;
    IDBObjectStore.prototype.put = function (
      this: IDBObjectStore,
      ...args: Parameters<IDBObjectStore['put']>
    ) {
      // The second record (layer 1) is refused as a full disk refuses it.
      if (++calls === 2) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return realPut.apply(this, args);
    };
    const err = await LayerPager.create(model, store, {
      budgetBytes: 1e9,
      policy: 'trace',
      prefetch: true,
    }).catch((e: unknown) => e);
    IDBObjectStore.prototype.put = realPut;
    expect(err).toBeInstanceOf(StorageError);
    expect((err as Error).message).toMatch(/^storage is full.* to save "offload:records\/base\/h\.1#0"/);
    await expect(store.get('base/h.0#0')).rejects.toThrow(/not in IndexedDB/);
    await expect(store.get('base/h.1#0')).rejects.toThrow(/not in IndexedDB/);
    for (const [name, { data }] of original) expect(await model.w(name).data(), name).toEqual(data);
    model.dispose();
  });
});
