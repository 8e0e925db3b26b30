/**
 * A model folder's three files -> a live model and its tokenizer, with the checks every loader
 * (the app, the CLI) shares: the tokenizer first (cheap, no tensors), then the weights, then that
 * the two belong together.
 */
import { TokenizerError } from '../errors';
import type { TextTokenizer } from '../tokenizer/tokenizer';
import { loadTokenizer } from '../tokenizer/tokenizer';
import type { DecoderModel } from './decoder';
import type { ModelFiles } from './load';
import { loadModel } from './load';

export function loadModelFolder(files: ModelFiles & { tokenizerJson: unknown | null }): {
  model: DecoderModel;
  tokenizer: TextTokenizer | null;
} {
  const source = `${files.source ?? 'model'}/tokenizer.json`;
  const tokenizer = files.tokenizerJson === null ? null : loadTokenizer(files.tokenizerJson, source);
  const model = loadModel(files);
  if (tokenizer && tokenizer.vocabSize > model.config.vocabSize) {
    model.dispose();
    throw new TokenizerError(
      `${source} has ${tokenizer.vocabSize} tokens but config.json says vocab_size ${model.config.vocabSize}; they belong to different models`,
    );
  }
  return { model, tokenizer };
}
