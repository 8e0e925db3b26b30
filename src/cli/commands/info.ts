/** `peft-lab info`: what a model folder holds and what it would run on. */
import { resolveModelArg } from '../hub';
import { requiredStr } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { formatBytes, readModelDir } from '../model-dir';

export const info: Command = {
  name: 'info',
  summary: 'show a model folder: config, parameters, file size, tokenizer, backend',
  usage: `Usage: peft-lab info --model DIR [--json]

Shows the model's configuration (layers, width, heads, vocabulary, positions), its parameter count,
the size of model.safetensors, the tokenizer's vocabulary size and the tfjs backend in use.

Options:
  --model DIR|REPO     model folder: config.json, model.safetensors, tokenizer.json (optional here),
                       or a Hub repo id (owner/name), downloaded once into ~/.cache/peft-lab/hub
  --json               print one JSON object instead of text

${GLOBAL_HELP}`,
  options: { model: { type: 'string' }, json: { type: 'boolean' } },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the model folder to describe');
    const files = readModelDir(await resolveModelArg(dir)); // missing files fail before tfjs starts
    const backend = await startBackend(flags);
    const { loadModel } = await import('../load');
    const { FAMILY_LABEL, attentionShape, countParameters } = await import('../../lib/model/family');
    const { isLlamaConfig } = await import('../../lib/model/llama-config');
    const tf = await import('@tensorflow/tfjs');
    const m = loadModel(files);
    const c = m.model.config;
    const { nKvHead, headDim } = attentionShape(c);
    const inner = isLlamaConfig(c) ? c.intermediateSize : c.nInner;
    const weights = m.dir.files.weights;
    const result = {
      model: dir,
      name: m.dir.name,
      family: m.model.family,
      architecture: isLlamaConfig(c) ? c.architecture : 'GPT2LMHeadModel',
      n_layer: c.nLayer,
      n_embd: c.nEmbd,
      n_head: c.nHead,
      n_kv_head: nKvHead,
      head_dim: headDim,
      n_inner: inner,
      vocab_size: c.vocabSize,
      n_positions: c.nPositions,
      parameters: countParameters(c),
      file_bytes: (Array.isArray(weights) ? weights : [weights]).reduce((n, w) => n + w.byteLength, 0),
      weight_files: m.dir.files.weightFileNames ?? ['model.safetensors'],
      tokenizer_vocab_size: m.tokenizer?.vocabSize ?? null,
      eos_token_id: m.tokenizer?.eosTokenId ?? null,
      backend: tf.getBackend() || backend,
    };
    m.model.dispose();
    if (values.json) {
      print(JSON.stringify(result));
      return;
    }
    const rows: [string, string][] = [
      ['model', `${dir} (${result.name})`],
      ['family', FAMILY_LABEL[m.model.family]],
      ['layers', String(c.nLayer)],
      ['width', `${c.nEmbd} (MLP ${inner})`],
      [
        'heads',
        `${c.nHead} (${headDim} per head${nKvHead !== c.nHead ? `, ${nKvHead} key/value heads` : ''})`,
      ],
      ['vocab', String(c.vocabSize)],
      ['positions', String(c.nPositions)],
      ['parameters', result.parameters.toLocaleString('en-US')],
      [
        'file size',
        `${formatBytes(result.file_bytes)} (${result.weight_files.length === 1 ? result.weight_files[0] : `${result.weight_files.length} shards`}, ${result.file_bytes.toLocaleString('en-US')} bytes)`,
      ],
      [
        'tokenizer',
        m.tokenizer
          ? `${m.tokenizer.vocabSize} tokens, eos id ${m.tokenizer.eosTokenId ?? 'none'}`
          : 'none (no tokenizer.json: generate and train need one)',
      ],
      ['backend', result.backend],
    ];
    print(rows.map(([k, v]) => `${k.padEnd(11)} ${v}`).join('\n'));
  },
};
