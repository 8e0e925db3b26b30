/** Model folder -> live model and tokenizer, with the checks the commands share. */
import { FileLoadError } from '../lib/errors';
import type { DecoderModel } from '../lib/model/decoder';
import { loadModelFolder } from '../lib/model/folder';
import type { TextTokenizer } from '../lib/tokenizer/tokenizer';
import type { ModelDir } from './model-dir';

export interface LoadedModel {
  dir: ModelDir;
  model: DecoderModel;
  tokenizer: TextTokenizer | null;
}

/** Builds the model (and tokenizer) from a folder read by readModelDir; the backend must be started. */
export function loadModel(dir: ModelDir): LoadedModel {
  return { dir, ...loadModelFolder({ ...dir.files, tokenizerJson: dir.tokenizerJson }) };
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
