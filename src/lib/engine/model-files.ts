/** A model folder's files (GPT-2 or the Llama family) into a live model and tokenizer, and the summary the UI shows. */
import { FileLoadError } from '../errors';
import type { DecoderModel } from '../model/decoder';
import { attentionShape, countParameters, describeArchitecture } from '../model/family';
import { isLlamaConfig } from '../model/llama-config';
import { loadModelFolder } from '../model/folder';
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
): { model: DecoderModel; tokenizer: TextTokenizer; summary: ModelSummary } {
  const parse = (b: ArrayBuffer, name: string): unknown => {
    try {
      return JSON.parse(decoder.decode(b));
    } catch (e) {
      throw new FileLoadError(`${id}/${name} is not valid JSON: ${(e as Error).message}`);
    }
  };
  const parts = Array.isArray(files.weights) ? files.weights : [files.weights];
  const { model, tokenizer } = loadModelFolder({
    config: parse(files.config, 'config.json'),
    weights: parts.length === 1 ? new Uint8Array(parts[0]!) : parts.map((p) => new Uint8Array(p)),
    ...(files.weightFileNames ? { weightFileNames: files.weightFileNames } : {}),
    source: id,
    tokenizerJson: parse(files.tokenizer, 'tokenizer.json'),
  });
  const c = model.config;
  return {
    model,
    tokenizer: tokenizer!,
    summary: {
      id,
      label: id,
      family: model.family,
      architecture: describeArchitecture(c),
      params: countParameters(c),
      nLayer: c.nLayer,
      nEmbd: c.nEmbd,
      nHead: c.nHead,
      nKvHead: attentionShape(c).nKvHead,
      ropeTheta: isLlamaConfig(c) ? c.ropeTheta : null,
      vocabSize: c.vocabSize,
      nPositions: c.nPositions,
      bytes: parts.reduce((n, p) => n + p.byteLength, 0),
    },
  };
}
