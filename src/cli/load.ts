/** Model folder -> live model and tokenizer, with the checks the commands share. */
import { TokenizerError, FileLoadError } from '../lib/errors';
import type { Gpt2Model } from '../lib/model/gpt2';
import { loadGpt2 } from '../lib/model/load';
import { loadTokenizer } from '../lib/tokenizer/tokenizer';
import type { TextTokenizer } from '../lib/tokenizer/tokenizer';
import type { ModelDir } from './model-dir';

export interface LoadedModel {
  dir: ModelDir;
  model: Gpt2Model;
  tokenizer: TextTokenizer | null;
}

/** Builds the model (and tokenizer) from a folder read by readModelDir; the backend must be started. */
export function loadModel(dir: ModelDir): LoadedModel {
  const tokSource = `${dir.files.source}/tokenizer.json`;
  // The tokenizer is checked first: it is cheap and needs no tensors.
  const tokenizer = dir.tokenizerJson === null ? null : loadTokenizer(dir.tokenizerJson, tokSource);
  const model = loadGpt2(dir.files);
  if (tokenizer && tokenizer.vocabSize > model.config.vocabSize) {
    model.dispose();
    throw new TokenizerError(
      `${tokSource} has ${tokenizer.vocabSize} tokens but config.json says vocab_size ${model.config.vocabSize}; they belong to different models`,
    );
  }
  return { dir, model, tokenizer };
}

/** The tokenizer, or a FileLoadError saying which command needs it. */
export function needTokenizer(m: LoadedModel, command: string): TextTokenizer {
  if (!m.tokenizer) {
    throw new FileLoadError(
      `${m.dir.files.source}/tokenizer.json: no such file; "peft-lab ${command}" needs the model's tokenizer`,
    );
  }
  return m.tokenizer;
}
