import { describe, expect, it } from 'vitest';
import { taskById } from '../lib/data/tasks/registry';
import { methodRequest } from '../lib/peft/method-config';
import { LESSON_RUN, offloadRun, raceRun } from '../lib/learn/build';
import { loraLesson } from '../lib/learn/lessons/lora';
import { knobValues } from '../lib/learn/types';
import { paramsToSetup } from './compare-hash';
import { parseHash } from './hash';
import { OFFLOAD_NOTE, runLinks, stepLinks } from './learn-links';

const ctx = { models: ['peftlab-s', 'peftlab-m'], taskType: (id: string) => taskById(id)?.taskType };
const open = (href: string) => {
  const { route, params } = parseHash(href);
  return { route, ...paramsToSetup(params, ctx) };
};

describe('"Open in the lab" links', () => {
  it('a race of distinct methods is one Compare link that reads back to the exact set-up', () => {
    const run = raceRun(
      'race',
      'LoRA against prompt tuning',
      'peftlab-m',
      'spam',
      [
        { method: 'lora', config: { r: 4, loraAlpha: 8 }, lr: 0.01 },
        { method: 'prompt-tuning', config: { numVirtualTokens: 12 } },
      ],
      { steps: 7, seed: 3 },
    );
    const links = runLinks(run);
    expect(links).toHaveLength(1);
    const { route, setup, notes } = open(links[0]!.href);
    expect(route).toBe('#/compare');
    expect(notes).toEqual([]);
    expect(setup.model).toBe('peftlab-m');
    expect(setup.task).toBe('spam');
    expect(setup.methods).toEqual(['lora', 'prompt-tuning']);
    expect(setup.steps).toBe(7);
    expect(setup.seed).toBe(3);
    expect(setup.batchSize).toBe(8);
    expect(setup.seqLen).toBe(48);
    // The lessons evaluate before and after only.
    expect(setup.evalEvery).toBe(0);
    expect(setup.lr['lora']).toBe(0.01);
    expect(setup.forms['lora']).toMatchObject({ r: 4, loraAlpha: 8 });
    // The engine merges a lane's config over PEFT's defaults (dropout 0), not the Compare screen's 0.05.
    expect(setup.forms['lora']!['loraDropout']).toBe(0);
    expect(setup.forms['prompt-tuning']!['numVirtualTokens']).toBe(12);
    expect(links[0]!.notCarried).toEqual([
      `${LESSON_RUN.evalExamples} evaluation examples (Compare scores its default number)`,
    ]);
  });

  it('a race that repeats a method opens one link per lane, each with its own config', () => {
    const step = loraLesson.steps[2]!;
    const values = knobValues(step.setup, { r: 4, steps: 2 });
    const links = stepLinks(step.run!(values));
    expect(links.map((l) => l.label)).toEqual([
      'LoRA on c_attn in Compare',
      'LoRA on every linear layer in Compare',
      'Full fine-tuning in Compare',
    ]);
    const [attn, all, full] = links.map((l) => open(l.href).setup);
    expect(attn!.methods).toEqual(['lora']);
    expect(attn!.steps).toBe(2);
    expect(attn!.forms['lora']).toMatchObject({ r: 4, loraAlpha: 16, targetModules: ['c_attn'] });
    expect(all!.forms['lora']!['targetModules']).toEqual(['c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']);
    expect(full!.methods).toEqual(['full']);
  });

  it('carries a manual prompt template; names config fields Compare has no field for', () => {
    const run = raceRun(
      'mp',
      'manual prompt',
      'peftlab-s',
      'spam',
      // A field the method does not have: only untyped input (a link, a form) can carry one.
      [methodRequest('lora', { nope: 1 })],
      {
        steps: 3,
        template: 'Is this spam? {text}',
      },
    );
    const [link] = runLinks(run);
    expect(open(link!.href).setup.template).toBe('Is this spam? {text}');
    expect(link!.notCarried.join(' ')).not.toMatch(/template/);
    expect(link!.notCarried).toContain("LoRA's nope");
  });

  it('an offload trial opens the Lab for its method and task and says where offload is set', () => {
    const run = offloadRun('t', 'LoRA under 64 MiB', 'peftlab-m', {
      task: 'moby-dick',
      method: 'lora',
      steps: 3,
      batchSize: 4,
      seqLen: 32,
      seed: 0,
      offload: {} as never,
      memoryBudgetMB: 64,
    });
    const [link] = runLinks(run);
    const { route, params } = parseHash(link!.href);
    expect(route).toBe('#/lab');
    expect(params.get('task')).toBe('moby-dick');
    expect(params.get('method')).toBe('lora');
    expect(link!.notCarried).toContain(OFFLOAD_NOTE);
  });
});
