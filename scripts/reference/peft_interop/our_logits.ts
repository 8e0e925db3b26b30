/**
 * Our side of the reverse interop check (see README.md here): for each adapter folder PEFT Lab
 * wrote, load it onto a fresh copy of the base model and write `ours.json` beside it with our logits
 * for one fixed input, real tokens only (a prompt adapter's virtual positions are dropped, as in
 * classification). check_ours_in_peft.py then loads the same folders with Python PEFT.
 *
 *   npx tsx scripts/reference/peft_interop/our_logits.ts --model public/models/peftlab-s \
 *     [--ids 15,201,7,999,42,3,1500,77] ADAPTER_DIR...
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initNodeBackend } from '../../../src/lib/backend/node';
import { loadModel as loadFolder } from '../../../src/lib/model/load';
import type { DecoderModel } from '../../../src/lib/model/decoder';
import { lmLogits } from '../../../src/lib/model/heads';
import type { EncodedSet } from '../../../src/lib/data/cls-data';
import { padBatch } from '../../../src/lib/data/cls-data';
import { loadAdapter } from '../../../src/lib/io/peft-format';
import { clsLogits } from '../../../src/lib/train/classification';
import { adapterDecorator, virtualPositions } from '../../../src/lib/peft/forward';
import type { Adapter } from '../../../src/lib/peft/types';

const { values, positionals } = parseArgs({
  options: {
    model: { type: 'string' },
    ids: { type: 'string', default: '15,201,7,999,42,3,1500,77' },
  },
  allowPositionals: true,
});
if (!values.model || positionals.length === 0) {
  console.error('usage: our_logits.ts --model MODEL_DIR [--ids 1,2,3] ADAPTER_DIR...');
  process.exit(2);
}
const modelDir = values.model;
const ids = values.ids.split(',').map(Number);

const loadModel = (): DecoderModel =>
  loadFolder({
    config: JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(modelDir, 'model.safetensors'))),
    source: modelDir,
  });

/** [1, T, V] (CAUSAL_LM), [1, numLabels] (SEQ_CLS) or [1, T, numLabels] (TOKEN_CLS). */
function logitsOf(model: DecoderModel, adapter: Adapter): tf.Tensor {
  const task = adapter.config.taskType;
  if (task === 'CAUSAL_LM') {
    const x = tf.tensor2d([ids], undefined, 'int32');
    let hidden = model.forward(adapterDecorator(model, adapter)({ ids: x }, true)).hidden; // [1, n + T, C]
    const n = virtualPositions(adapter);
    if (n > 0) hidden = tf.slice(hidden, [0, n, 0], [-1, -1, -1]); // [1, T, C]
    return lmLogits(model, hidden);
  }
  const set: EncodedSet = {
    task,
    examples: [{ ids, label: task === 'SEQ_CLS' ? 0 : ids.map(() => 0) }],
    padId: model.config.eosTokenId,
  };
  return clsLogits(model, adapter, adapter.head!, padBatch(set, [0]), false, 0);
}

await initNodeBackend('wasm');
for (const dir of positionals) {
  const model = loadModel();
  const adapter = loadAdapter(
    model,
    {
      config: readFileSync(join(dir, 'adapter_config.json'), 'utf8'),
      weights: new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))),
    },
    dir,
  );
  const out = tf.tidy(() => logitsOf(model, adapter));
  const result = {
    peft_type: adapter.config.peftType,
    task_type: adapter.config.taskType,
    input_ids: [ids],
    leading_positions_dropped: virtualPositions(adapter),
    shape: out.shape,
    logits: Array.from(out.dataSync()),
  };
  out.dispose();
  adapter.dispose();
  model.dispose();
  writeFileSync(join(dir, 'ours.json'), JSON.stringify(result));
  console.log(`${dir}: ${result.peft_type} ${result.task_type} logits ${JSON.stringify(result.shape)}`);
}
