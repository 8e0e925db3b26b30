import { describe, it, expect } from 'vitest';
import * as errors from './errors';
import {
  AdapterError,
  DataImportError,
  InternalError,
  NonFiniteLossError,
  PeftLabError,
  rebuildError,
  serializeError,
} from './errors';

/** Every error class the module exports, by its exported name. */
const CLASSES: [string, new (m: string) => Error][] = Object.entries(errors).flatMap(([name, v]) =>
  typeof v === 'function' && v.prototype instanceof Error ? [[name, v as new (m: string) => Error]] : [],
);

/** Through the wire as the workers send it: structured clone in the browser, JSON here. */
const wire = (e: unknown) => rebuildError(JSON.parse(JSON.stringify(serializeError(e))));

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

  it('rebuilds every exported class as itself, with its name, message and base classes', () => {
    expect(CLASSES.length).toBeGreaterThanOrEqual(20);
    for (const [name, cls] of CLASSES) {
      const sent = new cls(`${name}: what is wrong; what to change`);
      const back = wire(sent);
      expect(back.constructor, name).toBe(cls);
      expect(back.name).toBe(name);
      expect(back.message).toBe(sent.message);
      expect(back instanceof PeftLabError, name).toBe(sent instanceof PeftLabError);
    }
  });

  it("carries DataImportError's code and line, and its default code when none was given", () => {
    const back = wire(new DataImportError('line 7: 3 fields, the header has 2', 'field-count', 7));
    expect(back).toBeInstanceOf(DataImportError);
    expect(back).toMatchObject({ name: 'DataImportError', code: 'field-count', line: 7 });
    const plain = wire(new DataImportError('bad options'));
    expect(plain).toMatchObject({ code: 'bad-options', line: undefined });
    expect(serializeError(new DataImportError('empty', 'empty'))).toEqual({
      name: 'DataImportError',
      message: 'empty',
      fields: { code: 'empty' },
    });
  });

  it('carries the plain fields of any error, named or not, and leaves out objects and functions', () => {
    class WithFields extends PeftLabError {
      override name = 'WithFields';
      readonly bytes = 4096;
      readonly retry = false;
      readonly where: string | null = null;
      readonly detail = { nested: true };
      readonly fn = () => 1;
    }
    const s = serializeError(new WithFields('x'));
    expect(s.fields).toEqual({ bytes: 4096, retry: false, where: null });
    // A name the receiver does not know falls back to a plain Error that keeps name, message and fields.
    const back = wire(new WithFields('x'));
    expect(back).not.toBeInstanceOf(PeftLabError);
    expect(back).toBeInstanceOf(Error);
    expect(back).toMatchObject({ name: 'WithFields', message: 'x', bytes: 4096, retry: false, where: null });
    const node = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', errno: -2 });
    expect(wire(node)).toMatchObject({
      name: 'Error',
      message: 'ENOENT: no such file',
      code: 'ENOENT',
      errno: -2,
    });
  });

  it('never lets a field overwrite the name or the message', () => {
    const e = rebuildError({
      name: 'AdapterError',
      message: 'm',
      fields: { name: 'X', message: 'y', stack: 's' },
    });
    expect(e).toBeInstanceOf(AdapterError);
    expect(e.name).toBe('AdapterError');
    expect(e.message).toBe('m');
  });

  it('keeps InternalError apart from the errors a user can act on', () => {
    const e = wire(new InternalError('invariant'));
    expect(e).toBeInstanceOf(InternalError);
    expect(e).not.toBeInstanceOf(PeftLabError);
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
