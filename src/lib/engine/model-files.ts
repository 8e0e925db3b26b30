/** A GPT-2 folder's three files into a live model and tokenizer, and the summary the UI shows. */
import { FileLoadError } from '../errors';
import { countParameters } from '../model/config';
import { loadModelFolder } from '../model/folder';
import { requireGpt2 } from '../model/decoder';
import type { Gpt2Model } from '../model/gpt2';
import type { ModelFileBytes, ModelSummary } from '../protocol/lab-protocol';
import type { TextTokenizer } from '../tokenizer/tokenizer';

const decoder = new TextDecoder('utf-8');

/** Reads a URL or path into bytes; the browser passes fetch, Node tests pass a file reader. */
export type FetchBytes = (url: string) => Promise<ArrayBuffer>;

/** config.json, model.safetensors and tokenizer.json of the folder at `baseUrl`. */
export async function fetchModelFiles(fetchBytes: FetchBytes, baseUrl: string): Promise<ModelFileBytes> {
  const base = `${baseUrl.replace(/\/$/, '')}/`;
  const [config, weights, tokenizer] = await Promise.all([
    fetchBytes(`${base}config.json`),
    fetchBytes(`${base}model.safetensors`),
    fetchBytes(`${base}tokenizer.json`),
  ]);
  return { config, weights, tokenizer };
}

/** Builds the model; a file that is not JSON is named. */
export function modelFromFiles(
  id: string,
  files: ModelFileBytes,
): { model: Gpt2Model; tokenizer: TextTokenizer; summary: ModelSummary } {
  const parse = (b: ArrayBuffer, name: string): unknown => {
    try {
      return JSON.parse(decoder.decode(b));
    } catch (e) {
      throw new FileLoadError(`${id}/${name} is not valid JSON: ${(e as Error).message}`);
    }
  };
  const loaded = loadModelFolder({
    config: parse(files.config, 'config.json'),
    weights: new Uint8Array(files.weights),
    source: id,
    tokenizerJson: parse(files.tokenizer, 'tokenizer.json'),
  });
  let model: Gpt2Model;
  try {
    model = requireGpt2(loaded.model, 'The Lab');
  } catch (e) {
    loaded.model.dispose();
    throw e;
  }
  const c = model.config;
  return {
    model,
    tokenizer: loaded.tokenizer!,
    summary: {
      id,
      label: id,
      params: countParameters(c),
      nLayer: c.nLayer,
      nEmbd: c.nEmbd,
      nHead: c.nHead,
      vocabSize: c.vocabSize,
      nPositions: c.nPositions,
      bytes: files.weights.byteLength,
    },
  };
}
