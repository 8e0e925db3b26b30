/**
 * Opening an adapter before the engine sees it: which picked files make an adapter (a .bin is
 * named with how to convert it), which base its config names, and the Hub download of an adapter
 * repo against a real local server with the Hub's URL layout.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseModelOf, matchBaseModel, pickAdapterFiles } from './adapter-files';
import { downloadHubAdapter } from './hub';
import { AdapterFormatError, FileLoadError } from '../errors';

const LORA = join(process.cwd(), 'src/lib/peft/fixtures/peft-0.21-open/lora');
const f = (name: string, webkitRelativePath = ''): { name: string; webkitRelativePath: string } => ({
  name,
  webkitRelativePath,
});

describe('pickAdapterFiles', () => {
  it('takes the two files chosen together, or a folder, ignoring the rest', () => {
    const two = pickAdapterFiles([f('adapter_model.safetensors'), f('adapter_config.json')]);
    expect(two.config.name).toBe('adapter_config.json');
    expect(two.weights.name).toBe('adapter_model.safetensors');
    expect(two.folder).toBeNull();
    const folder = pickAdapterFiles([
      f('README.md', 'my-lora/README.md'),
      f('adapter_config.json', 'my-lora/adapter_config.json'),
      f('adapter_model.safetensors', 'my-lora/adapter_model.safetensors'),
      // A checkpoint sub-folder save_pretrained's callers often leave beside it.
      f('adapter_config.json', 'my-lora/checkpoint-10/adapter_config.json'),
    ]);
    expect(folder.folder).toBe('my-lora');
    expect(folder.config.webkitRelativePath).toBe('my-lora/adapter_config.json');
  });

  it('names a pickled adapter_model.bin and says how to convert it', () => {
    const pick = (): unknown => pickAdapterFiles([f('adapter_config.json'), f('adapter_model.bin')]);
    expect(pick).toThrow(AdapterFormatError);
    expect(pick).toThrow(
      /reads adapter_model\.safetensors only.*safe_serialization=True.*safetensors\.torch\.save_file/,
    );
  });

  it('names what is missing', () => {
    expect(() => pickAdapterFiles([f('adapter_config.json')])).toThrow(
      /lack adapter_model\.safetensors: pick a PEFT adapter folder/,
    );
    expect(() => pickAdapterFiles([f('config.json'), f('model.safetensors')])).toThrow(
      /lack adapter_config\.json and adapter_model\.safetensors/,
    );
  });
});

describe('the base an adapter names', () => {
  it('reads base_model_name_or_path and matches a bundled or cached model', () => {
    expect(baseModelOf(readFileSync(join(LORA, 'adapter_config.json'), 'utf8'))).toBe('peftlab-s');
    expect(baseModelOf('{"peft_type": "LORA"}')).toBeNull();
    expect(baseModelOf('{nope')).toBeNull();
    const bundled = ['peftlab-s', 'peftlab-m'];
    const cached = ['hub: openai-community/gpt2'];
    expect(matchBaseModel('peftlab-m', bundled, cached)).toBe('peftlab-m');
    expect(matchBaseModel('/home/me/models/peftlab-s/', bundled, cached)).toBe('peftlab-s');
    expect(matchBaseModel('openai-community/gpt2', bundled, cached)).toBe('hub: openai-community/gpt2');
    expect(matchBaseModel('meta-llama/Llama-3.2-1B', bundled, cached)).toBeNull();
    expect(matchBaseModel(null, bundled, cached)).toBeNull();
  });
});

describe('downloadHubAdapter', () => {
  const REPOS: Record<string, Record<string, Buffer>> = {
    'peftlab/lora-peftlab-s': {
      'adapter_config.json': readFileSync(join(LORA, 'adapter_config.json')),
      'adapter_model.safetensors': readFileSync(join(LORA, 'adapter_model.safetensors')),
    },
    'old/bin-adapter': {
      'adapter_config.json': readFileSync(join(LORA, 'adapter_config.json')),
      'adapter_model.bin': Buffer.from('pickle'),
    },
    'peftlab/peftlab-s': { 'config.json': Buffer.from('{"model_type": "gpt2"}') },
  };
  let server: Server;
  let endpoint = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      const m = /^\/([^/]+\/[^/]+)\/resolve\/main\/(.+)$/.exec(req.url ?? '');
      const body = m ? REPOS[m[1]!]?.[m[2]!] : undefined;
      if (!body) return void res.writeHead(404).end('Entry not found');
      res.writeHead(200, { 'content-length': body.byteLength, connection: 'close' }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('downloads the config and the safetensors weights', async () => {
    const got = await downloadHubAdapter('peftlab/lora-peftlab-s', { endpoint });
    expect(baseModelOf(got.config)).toBe('peftlab-s');
    expect(new Uint8Array(got.weights)).toEqual(
      new Uint8Array(readFileSync(join(LORA, 'adapter_model.safetensors'))),
    );
  });

  it('refuses a repo with only adapter_model.bin, and one that is not an adapter', async () => {
    await expect(downloadHubAdapter('old/bin-adapter', { endpoint })).rejects.toThrow(AdapterFormatError);
    await expect(downloadHubAdapter('old/bin-adapter', { endpoint })).rejects.toThrow(
      /safe_serialization=True/,
    );
    await expect(downloadHubAdapter('peftlab/peftlab-s', { endpoint })).rejects.toThrow(FileLoadError);
    await expect(downloadHubAdapter('peftlab/peftlab-s', { endpoint })).rejects.toThrow(
      /not a PEFT adapter repo/,
    );
  });
});
