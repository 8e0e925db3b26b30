import { describe, expect, it } from 'vitest';
import { METHOD_INFO } from '../lib/peft/catalog';
import {
  findMethod,
  formProblem,
  formsForFamily,
  initialForm,
  initialForms,
  listWords,
  requestConfig,
  toggleModule,
  unsupportedReason,
} from './method-form';
import type { MethodForm } from './method-form';

const info = (name: string) => findMethod(name)!;

describe('method forms', () => {
  it('hold exactly the fields of every method, from its defaults, with the Lab’s LoRA values', () => {
    const forms = initialForms('CAUSAL_LM');
    expect(Object.keys(forms)).toEqual(METHOD_INFO.map((m) => m.cliName));
    for (const m of METHOD_INFO) expect(Object.keys(forms[m.cliName]!)).toEqual(m.fields.map((f) => f.field));
    expect(forms['lora']).toEqual({
      r: 8,
      loraAlpha: 16,
      loraDropout: 0.05,
      useRslora: false,
      useDora: false,
      initLoraWeights: 'true',
      targetModules: ['c_attn'],
    });
    // Other methods keep PEFT's defaults.
    expect(forms['adalora']!['loraAlpha']).toBe(8);
    expect(forms['prefix-tuning']).toEqual({
      numVirtualTokens: 10,
      prefixProjection: false,
      encoderHiddenSize: null,
    });
    expect(forms['full']).toEqual({});
  });

  it('never share arrays with the defaults or between forms', () => {
    const a = initialForm(info('ia3'), 'SEQ_CLS');
    (a['targetModules'] as string[]).push('mlp.c_fc');
    expect(initialForm(info('ia3'), 'SEQ_CLS')['targetModules']).toEqual(['c_attn', 'mlp.c_proj']);
  });

  it('send only the fields that apply', () => {
    const prefix = info('prefix-tuning');
    const form = initialForm(prefix, 'CAUSAL_LM');
    expect(requestConfig(prefix, form)).toEqual({ numVirtualTokens: 10, prefixProjection: false });
    form['prefixProjection'] = true;
    expect(requestConfig(prefix, form)).toEqual({
      numVirtualTokens: 10,
      prefixProjection: true,
      encoderHiddenSize: null,
    });
    const pt = info('prompt-tuning');
    const ptForm: MethodForm = { ...initialForm(pt, 'CAUSAL_LM'), promptTuningInitText: 'Is this spam?' };
    expect(requestConfig(pt, ptForm)).not.toHaveProperty('promptTuningInitText');
    ptForm['promptTuningInit'] = 'TEXT';
    expect(requestConfig(pt, ptForm)).toHaveProperty('promptTuningInitText', 'Is this spam?');
  });

  it('name what keeps a form from training', () => {
    const lora = info('lora');
    const form = initialForm(lora, 'CAUSAL_LM');
    expect(formProblem(lora, form)).toBeNull();
    form['targetModules'] = [];
    expect(formProblem(lora, form)).toBe('targetModules: tick at least one layer');
    form['targetModules'] = ['c_attn'];
    form['r'] = null;
    expect(formProblem(lora, form)).toBe('r needs a value');
    // A nullable field may be empty; a text that applies may not.
    const prefix = info('prefix-tuning');
    expect(
      formProblem(prefix, { numVirtualTokens: 4, prefixProjection: true, encoderHiddenSize: null }),
    ).toBeNull();
    const pt = info('prompt-tuning');
    const ptForm = { ...initialForm(pt, 'CAUSAL_LM'), promptTuningInit: 'TEXT' };
    expect(formProblem(pt, ptForm)).toBe('promptTuningInitText needs a value');
  });

  it('say which task types a method cannot train', () => {
    expect(unsupportedReason(info('p-tuning-v2'), 'CAUSAL_LM')).toBe(
      'P-tuning v2: SEQ_CLS and TOKEN_CLS only',
    );
    expect(unsupportedReason(info('p-tuning-v2'), 'SEQ_CLS')).toBeNull();
    for (const m of METHOD_INFO) expect(unsupportedReason(m, m.taskTypes[0]!)).toBeNull();
  });

  it('list words in prose', () => {
    expect(listWords(['SEQ_CLS'])).toBe('SEQ_CLS');
    expect(listWords(['SEQ_CLS', 'TOKEN_CLS'], 'or')).toBe('SEQ_CLS or TOKEN_CLS');
    expect(listWords(['a', 'b', 'c'])).toBe('a, b and c');
  });

  it('keep targetModules in GPT-2’s layer order', () => {
    expect(toggleModule(['mlp.c_proj'], 'c_attn', true)).toEqual(['c_attn', 'mlp.c_proj']);
    expect(toggleModule(['c_attn', 'mlp.c_proj'], 'c_attn', false)).toEqual(['mlp.c_proj']);
    expect(toggleModule(undefined, 'mlp.c_fc', true)).toEqual(['mlp.c_fc']);
  });

  it('follow the model family: PEFT’s default targets and Llama module names', () => {
    const llama = initialForms('CAUSAL_LM', 'llama');
    expect(llama.lora!.targetModules).toEqual(['q_proj', 'v_proj']);
    expect(llama.ia3!.targetModules).toEqual(['k_proj', 'v_proj', 'down_proj']);
    expect(llama.ia3!.feedforwardModules).toEqual(['down_proj']);
    expect(initialForms('CAUSAL_LM', 'qwen2').ia3!.targetModules).toEqual(['q_proj', 'v_proj', 'down_proj']);
    // A model of another family: module fields start over, what was typed stays.
    const typed = initialForms('CAUSAL_LM');
    typed.lora = { ...typed.lora, r: 2 };
    const moved = formsForFamily(typed, 'CAUSAL_LM', 'mistral');
    expect(moved.lora).toMatchObject({ r: 2, targetModules: ['q_proj', 'v_proj'] });
    expect(formsForFamily(moved, 'CAUSAL_LM', 'gpt2').lora!.targetModules).toEqual(['c_attn']);
    expect(toggleModule(['v_proj'], 'q_proj', true, 'llama')).toEqual(['q_proj', 'v_proj']);
    expect(toggleModule(['q_proj', 'v_proj'], 'down_proj', true, 'llama')).toEqual([
      'q_proj',
      'v_proj',
      'down_proj',
    ]);
  });
});
