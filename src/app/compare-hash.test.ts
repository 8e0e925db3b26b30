import { describe, expect, it } from 'vitest';
import { taskById } from '../lib/data/tasks/registry';
import { defaultSetup, paramsToSetup, setupToParams } from './compare-hash';

const ctx = {
  models: ['peftlab-s', 'peftlab-m'],
  taskType: (id: string) => taskById(id)?.taskType,
};

describe('compare set-up in the URL hash', () => {
  it('writes only what differs from the defaults and reads the same set-up back', () => {
    const setup = defaultSetup('peftlab-m', 'spam', 'SEQ_CLS');
    setup.methods = ['lora', 'prompt-tuning', 'p-tuning-v2'];
    setup.steps = 6;
    setup.seqLen = 32;
    setup.equal = true;
    setup.budget = 1234;
    setup.lr['prompt-tuning'] = 0.05;
    setup.forms['lora']!['r'] = 4;
    setup.forms['lora']!['targetModules'] = ['c_attn', 'mlp.c_fc'];
    setup.forms['p-tuning-v2']!['prefixProjection'] = true;
    setup.forms['p-tuning-v2']!['encoderHiddenSize'] = null;
    const p = setupToParams(setup, 'SEQ_CLS');
    expect(p.get('steps')).toBe('6');
    expect(p.has('batch')).toBe(false);
    expect(p.get('lr.prompt-tuning')).toBe('0.05');
    expect(p.has('lr.lora')).toBe(false);
    expect(p.get('cfg.lora.targetModules')).toBe('c_attn,mlp.c_fc');
    expect(p.get('cfg.p-tuning-v2.prefixProjection')).toBe('1');

    const back = paramsToSetup(new URLSearchParams(p.toString()), ctx);
    expect(back.notes).toEqual([]);
    expect(back.setup).toEqual(setup);
  });

  it('carries a manual prompt template for classification, and names one that cannot apply', () => {
    const setup = defaultSetup('peftlab-s', 'spam', 'SEQ_CLS');
    setup.template = 'Is this spam? {text} Answer:';
    const p = setupToParams(setup, 'SEQ_CLS');
    expect(p.get('template')).toBe('Is this spam? {text} Answer:');
    expect(paramsToSetup(new URLSearchParams(p.toString()), ctx).setup).toEqual(setup);
    expect(setupToParams(defaultSetup('peftlab-s', 'spam', 'SEQ_CLS'), 'SEQ_CLS').has('template')).toBe(
      false,
    );
    const bad = paramsToSetup(new URLSearchParams('task=spam&template=no+slot'), ctx);
    expect(bad.setup.template).toBe('');
    expect(bad.notes).toEqual(['template "no slot" needs exactly one {text} where the input goes: left out']);
    const lm = paramsToSetup(new URLSearchParams('task=moby-dick&template=a+{text}'), ctx);
    expect(lm.setup.template).toBe('');
    expect(lm.notes).toEqual(['a prompt template applies to classification only: left out']);
  });

  it('falls back to defaults for unknown methods, fields and bad numbers, naming each', () => {
    const p = new URLSearchParams(
      'model=nope&task=spam&methods=lora,warp-drive,lora&steps=-3&seed=x&lr.lora=abc&cfg.lora.r=2.5&cfg.lora.zzz=1&cfg.ia3.targetModules=c_attn,foo&budget=0',
    );
    const { setup, notes } = paramsToSetup(p, ctx);
    const d = defaultSetup('peftlab-s', 'spam', 'SEQ_CLS');
    expect(setup.model).toBe('peftlab-s');
    expect(setup.methods).toEqual(['lora']);
    expect(setup.steps).toBe(d.steps);
    expect(setup.seed).toBe(d.seed);
    expect(setup.lr['lora']).toBe(d.lr['lora']);
    expect(setup.forms['lora']).toEqual(d.forms['lora']);
    expect(setup.forms['ia3']).toEqual(d.forms['ia3']);
    expect(setup.budget).toBeNull();
    expect(notes.join('\n')).toMatch(/unknown model "nope"/);
    expect(notes.join('\n')).toMatch(/unknown method "warp-drive"/);
    expect(notes.join('\n')).toMatch(/steps=-3/);
    expect(notes.join('\n')).toMatch(/seed=x/);
    expect(notes.join('\n')).toMatch(/lr\.lora=abc/);
    expect(notes.join('\n')).toMatch(/cfg\.lora\.r: "2\.5" is not a whole number/);
    expect(notes.join('\n')).toMatch(/LoRA has no field "zzz"/);
    expect(notes.join('\n')).toMatch(/unknown module foo/);
    expect(notes).toHaveLength(9);
  });

  it('leaves out a method the task type does not train, and replaces an unknown task', () => {
    const a = paramsToSetup(new URLSearchParams('task=moby-dick&methods=p-tuning-v2,lora'), ctx);
    expect(a.setup.methods).toEqual(['lora']);
    expect(a.notes[0]).toMatch(/P-tuning v2 does not train moby-dick/);
    const b = paramsToSetup(new URLSearchParams('task=nowhere'), ctx);
    expect(b.setup.task).toBe('spam');
    expect(b.notes[0]).toMatch(/unknown task "nowhere"/);
  });
});

describe('compare hash: fuzzing findings (src/lib/fuzz)', () => {
  it('keeps the default for a number past the exact integers (batch=2^53 was taken)', () => {
    const { setup, notes } = paramsToSetup(
      new URLSearchParams('batch=9007199254740992&eval=1e300&budget=1e20'),
      ctx,
    );
    const d = defaultSetup('peftlab-s', 'spam', 'SEQ_CLS');
    expect(setup.batchSize).toBe(d.batchSize);
    expect(setup.evalEvery).toBe(d.evalEvery);
    expect(setup.budget).toBeNull();
    expect(notes).toHaveLength(3);
  });
});
