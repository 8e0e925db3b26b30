import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  describeTokenizer,
  keptModelBytes,
  localModelId,
  missingModelFiles,
  modelDetails,
  readModelFolder,
  renderModelCard,
  resolveCardUrl,
} from './models';

const FOLDER = 'http://localhost:4173/models/peftlab-s/';
const bytes = (path: string): ArrayBuffer => {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

describe('model details', () => {
  it('reads parameters, shape and tokenizer from a folder’s files', () => {
    const d = modelDetails(
      bytes('public/models/peftlab-s/config.json'),
      bytes('public/models/peftlab-s/tokenizer.json'),
    );
    expect(d).toEqual({
      family: 'gpt2',
      architecture: 'GPT-2 (GPT2LMHeadModel), 3 layers, 4 heads',
      params: 556896,
      nLayer: 3,
      nEmbd: 96,
      nHead: 4,
      vocabSize: 2048,
      nPositions: 256,
      tokenizer: 'byte-level BPE, 2,048 tokens (1 special)',
    });
    expect(() => modelDetails(new TextEncoder().encode('{').buffer, new ArrayBuffer(0))).toThrow(
      /config.json is not valid JSON/,
    );
    expect(describeTokenizer({ model: { type: 'WordPiece', vocab: { a: 0, b: 1 } } })).toBe(
      'WordPiece, 2 tokens',
    );
    expect(describeTokenizer(null)).toBe('unknown model');
  });

  it('reads a Llama-family config: family, grouped heads and the rotary base', () => {
    const d = modelDetails(
      bytes('src/lib/model/fixtures/tiny-llama/config.json'),
      bytes('src/lib/model/fixtures/tiny-llama/tokenizer.json'),
    );
    expect(d.family).toBe('llama');
    expect(d.architecture).toBe(
      'Llama (LlamaForCausalLM), 2 layers, 4 heads / 2 key-value heads, RoPE theta 10,000',
    );
    expect(d.nLayer).toBe(2);
  });

  it('reads a picked sharded folder by name: the index, then the shards it names; a missing shard is named', async () => {
    const dir = 'src/lib/model/fixtures/tiny-qwen2-sharded';
    const picked = readdirSync(dir).map(
      (n) => new File([readFileSync(join(dir, n))], n, { type: 'application/octet-stream' }),
    );
    const { bytes: got, files } = await readModelFolder(picked, 'tiny-qwen2');
    // In the order tensors first appear in the index's weight_map.
    const shards = [1, 3, 2, 4].map((i) => `model-0000${i}-of-00004.safetensors`);
    expect(got.weightFileNames).toEqual(shards);
    expect((got.weights as ArrayBuffer[]).map((w) => w.byteLength)).toEqual(
      shards.map((n) => readFileSync(join(dir, n)).byteLength),
    );
    // expected.json was picked too and is not kept.
    expect(Object.keys(files).sort()).toEqual(
      ['config.json', 'model.safetensors.index.json', 'tokenizer.json', ...shards].sort(),
    );
    expect(keptModelBytes(files, 'x')?.weightFileNames).toEqual(shards);
    const { [shards[2]!]: _lost, ...rest } = files;
    expect(keptModelBytes(rest, 'x')).toBeNull();
    await expect(
      readModelFolder(
        picked.filter((f) => f.name !== shards[2]),
        'tiny-qwen2',
      ),
    ).rejects.toThrow(
      /tiny-qwen2 lacks model-00002-of-00004.safetensors, which model.safetensors.index.json names/,
    );
  });

  it('names missing files and gives local models unique ids', () => {
    expect(missingModelFiles(['config.json', 'tokenizer.json', 'model.safetensors.index.json'])).toEqual([]);
    expect(missingModelFiles(['config.json', 'tokenizer.json', 'x'])).toEqual(['model.safetensors']);
    expect(missingModelFiles(['config.json', 'model.safetensors', 'tokenizer.json'])).toEqual([]);
    expect(localModelId('gpt2', [])).toBe('local: gpt2');
    expect(localModelId(' ', [])).toBe('local: model');
    expect(localModelId('gpt2', ['local: gpt2', 'local: gpt2 (2)'])).toBe('local: gpt2 (3)');
  });
});

describe('model cards', () => {
  it('renders a bundled card: headings, the table, and the loss curve from the model’s folder', () => {
    const html = renderModelCard(readFileSync('public/models/peftlab-s/README.md', 'utf8'), FOLDER);
    expect(html).toMatch(/^<h1>peftlab-s<\/h1>/);
    expect(html).toContain('<table>');
    expect(html).toContain(
      '<img src="http://localhost:4173/models/peftlab-s/loss-curve.svg" alt="loss curve"',
    );
    expect(html).toContain('<h2>Data</h2>');
  });

  it('escapes raw HTML and drops script URLs, so an untrusted Hub card cannot run code', () => {
    const card = [
      '---',
      'license: mit',
      '---',
      '# Evil <b>card</b>',
      '',
      '<script>alert(1)</script>',
      '',
      '<img src=x onerror="alert(2)">',
      '',
      '[click](javascript:alert(3)) [ok](https://example.com/a "t\\"x") [rel](../other/README.md)',
      '',
      '![pic](data:image/svg+xml,<svg onload=alert(4)>) ![p2](img/a.png)',
    ].join('\n');
    const html = renderModelCard(card, FOLDER);
    expect(html).not.toContain('license: mit');
    expect(html).toContain('<h1>Evil &lt;b&gt;card&lt;/b&gt;</h1>');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&lt;img src=x onerror=&quot;alert(2)&quot;&gt;');
    expect(html).not.toMatch(/<script|<img src=x|javascript:|<svg|href="data:/i);
    expect(html).toContain('click');
    expect(html).toContain(
      '<a href="https://example.com/a" title="t&quot;x" target="_blank" rel="noopener noreferrer">ok</a>',
    );
    expect(html).toContain('href="http://localhost:4173/models/other/README.md"');
    expect(html).toContain('<img src="http://localhost:4173/models/peftlab-s/img/a.png" alt="p2"');
    expect(resolveCardUrl('vbscript:x', FOLDER)).toBeNull();
    expect(resolveCardUrl('//cdn.example/x.png', FOLDER)).toBe('http://cdn.example/x.png');
  });
});
