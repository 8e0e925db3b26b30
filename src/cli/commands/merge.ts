/**
 * `peft-lab merge`: folds an adapter into the base weights and writes a plain HuggingFace GPT-2
 * folder, as PEFT's `merge_and_unload()` then `save_pretrained()`: the result runs with no PEFT at
 * all. Only weight-space methods merge (LoRA, AdaLoRA, IA3, and full fine-tuning's own weights);
 * prompt and prefix methods add inputs, not weights, so there is nothing to fold.
 */
import { copyFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveModelArg } from '../hub';
import { UsageError } from '../../lib/errors';
import { requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { prepareOutDir, readAdapterDir, readModelDir } from '../model-dir';

export const merge: Command = {
  name: 'merge',
  summary: "fold a LoRA, AdaLoRA or IA3 adapter into the weights (PEFT's merge_and_unload)",
  usage: `Usage: peft-lab merge --model DIR --adapter DIR --out DIR [--dtype F32|F16]

Writes config.json, model.safetensors and tokenizer.json of the merged model to --out: a plain GPT-2
folder that any GPT-2 reader loads, with the adapter's effect built in.

Options:
  --model DIR|REPO        the base model folder, or a Hub repo id (owner/name)
  --adapter DIR           PEFT adapter folder (adapter_config.json, adapter_model.safetensors)
  --out DIR               where to write the merged model
  --dtype F32|F16         weight type of model.safetensors (default F32)

${GLOBAL_HELP}`,
  options: {
    model: { type: 'string' },
    adapter: { type: 'string' },
    out: { type: 'string' },
    dtype: { type: 'string' },
  },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the base model folder');
    const adapterPath = requiredStr(values, 'adapter', 'the adapter folder to merge');
    const out = requiredStr(values, 'out', 'the folder to write the merged model to');
    const dtype = str(values, 'dtype') ?? 'F32';
    if (dtype !== 'F32' && dtype !== 'F16')
      throw new UsageError(`--dtype must be F32 or F16, got ${JSON.stringify(dtype)}`);
    const modelDir = await resolveModelArg(dir);
    const modelFiles = readModelDir(modelDir);
    const adapterFiles = readAdapterDir(adapterPath);

    await startBackend(flags);
    const { loadModel } = await import('../load');
    const { loadAdapter } = await import('../../lib/io/peft-format');
    const { saveGpt2 } = await import('../../lib/model/load');
    const { requireGpt2 } = await import('../../lib/model/decoder');
    const m = loadModel(modelFiles);
    requireGpt2(m.model, 'peft-lab merge'); // before any work: a Llama-family folder is not written yet
    const adapter = loadAdapter(m.model, adapterFiles, adapterFiles.source);
    try {
      if (adapter.kind === 'prompt' || adapter.kind === 'prefix') {
        throw new UsageError(
          `${adapterFiles.source} is ${adapter.config.peftType}: its virtual tokens are inputs, not weights, so there is nothing to merge; use it with --adapter`,
        );
      }
      if (adapter.config.taskType !== 'CAUSAL_LM') {
        throw new UsageError(
          `${adapterFiles.source} is a ${adapter.config.taskType} adapter: merging writes a GPT2LMHeadModel folder, which has no place for its classification head; merge a CAUSAL_LM adapter`,
        );
      }
      if (adapter.kind === 'inject') adapter.merge();
      const files = await saveGpt2(requireGpt2(m.model, 'peft-lab merge'), dtype);
      prepareOutDir(out);
      writeFileSync(join(out, 'config.json'), files.config + '\n');
      writeFileSync(join(out, 'model.safetensors'), files.weights);
      const written = ['config.json', 'model.safetensors'];
      if (existsSync(join(modelDir, 'tokenizer.json'))) {
        copyFileSync(join(modelDir, 'tokenizer.json'), join(out, 'tokenizer.json'));
        written.push('tokenizer.json');
      }
      print(`merged ${adapter.config.peftType} into ${out} (${written.join(', ')})`);
    } finally {
      adapter.dispose();
      m.model.dispose();
    }
  },
};
