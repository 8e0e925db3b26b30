/**
 * "Export as a Python project" on a finished Compare lane: the lane's method and the config it
 * trained with (an equal budget resized it), its rate, and the race's settings, in the same project
 * the Lab writes. The zip stores files uncompressed, so their text can be read straight from it.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExportError } from '../lib/errors';
import { TASKS } from '../lib/data/tasks/registry';
import { METHOD_INFO } from '../lib/peft/catalog';
import type { PeftConfigBase } from '../lib/peft/types';
import { laneProjectZip } from './export-project';
import type { LaneExport } from './export-project';

const fromPublic = async (url: string): Promise<Response> => {
  const path = join('public', url.replace(/^\//, ''));
  return existsSync(path) ? new Response(readFileSync(path)) : new Response(null, { status: 404 });
};

const spam = TASKS.find((t) => t.id === 'spam')!;
const lora = METHOD_INFO.find((m) => m.cliName === 'lora')!;

function lane(over: Partial<LaneExport> = {}): LaneExport {
  return {
    modelId: 'peftlab-s',
    bundled: ['peftlab-s'],
    baseUrl: '/',
    lane: {
      name: 'LoRA 2',
      method: 'lora',
      // As an equal budget left it: r 2 where the form said 8.
      config: {
        ...lora.defaults('SEQ_CLS'),
        r: 2,
        loraAlpha: 4,
        baseModelNameOrPath: 'peftlab-s',
      } as PeftConfigBase,
      lr: 0.02,
    },
    task: spam,
    settings: { steps: 40, batchSize: 4, seqLen: 48, seed: 5 },
    template: 'Mail: {text} Spam?',
    ...over,
  };
}

/** The text of one file of a stored (uncompressed) zip. */
function fileText(zip: Uint8Array, path: string): string {
  const all = new TextDecoder('latin1').decode(zip);
  const at = all.indexOf(path);
  expect(at, path).toBeGreaterThanOrEqual(0);
  return all.slice(at + path.length, at + path.length + 4000);
}

describe('Export as a Python project (a Compare lane)', () => {
  it('writes the lane config, rate and the race settings, with the template, named for the lane', async () => {
    const { name, zip } = await laneProjectZip(lane(), fromPublic);
    expect(name).toBe('peft-lab-lora-2-spam.zip');
    const settings = fileText(zip, 'peft-lab-lora-2-spam/settings.json');
    expect(settings).toMatch(/"lr": 0\.02/);
    expect(settings).toMatch(/"steps": 40/);
    expect(settings).toMatch(/"batch_size": 4/);
    expect(settings).toMatch(/"seq_len": 48/);
    expect(settings).toMatch(/"seed": 5/);
    // The race's trainer warms up a tenth of the steps.
    expect(settings).toMatch(/"warmup_steps": 4/);
    const train = fileText(zip, 'peft-lab-lora-2-spam/train.py');
    expect(train).toMatch(/LoraConfig\(/);
    expect(fileText(zip, 'peft-lab-lora-2-spam/ds_config.json')).toMatch(/"stage": 0/);
    const all = new TextDecoder('latin1').decode(zip);
    expect(all).toMatch(/r=2\b/);
    expect(settings.includes('"before": "Mail: "') && settings.includes('"after": " Spam?"')).toBe(true);
    expect(all).toContain('peft-lab-lora-2-spam/model/model.safetensors');
  });

  it('refuses a lane of a model that is not bundled, or of an unknown method, by name', async () => {
    await expect(laneProjectZip(lane({ modelId: 'local: mine' }), fromPublic)).rejects.toThrow(ExportError);
    await expect(
      laneProjectZip(lane({ lane: { ...lane().lane, method: 'nope' } }), fromPublic),
    ).rejects.toThrow(/"nope" is not one PEFT Lab knows/);
  });
});
