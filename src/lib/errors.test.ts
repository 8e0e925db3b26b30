import { describe, it, expect } from 'vitest';
import { AdapterError, NonFiniteLossError, PeftLabError, rebuildError, serializeError } from './errors';

describe('named errors across the worker boundary', () => {
  it('round-trips the class and message through {name, message}', () => {
    const wire = JSON.parse(JSON.stringify(serializeError(new AdapterError('adapter/x: tensor missing'))));
    expect(wire).toEqual({ name: 'AdapterError', message: 'adapter/x: tensor missing' });
    const back = rebuildError(wire);
    expect(back).toBeInstanceOf(AdapterError);
    expect(back).toBeInstanceOf(PeftLabError);
    expect(back.message).toBe('adapter/x: tensor missing');
    expect(rebuildError(serializeError(new NonFiniteLossError('nan')))).toBeInstanceOf(NonFiniteLossError);
  });

  it('keeps unknown names and plain values readable', () => {
    const e = rebuildError({ name: 'QuotaExceededError', message: 'full' });
    expect(e.name).toBe('QuotaExceededError');
    expect(e).not.toBeInstanceOf(PeftLabError);
    expect(serializeError('boom')).toEqual({ name: 'Error', message: 'boom' });
  });
});

describe('error names survive minification', () => {
  it('spells every name out instead of reading the constructor name', async () => {
    const mod = await import('./errors');
    for (const [exported, cls] of Object.entries(mod)) {
      if (typeof cls === 'function' && cls.prototype instanceof Error) {
        const e = new (cls as new (m: string) => Error)('x');
        expect(e.name).toBe(exported);
      }
    }
  });
});
