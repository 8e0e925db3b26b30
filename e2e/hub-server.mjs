// A local server with the HuggingFace Hub's URL layout (/{owner}/{name}/resolve/{rev}/{file}) for the
// browser tests: this machine has no internet, and the app's real download code must still run.
// Serves the bundled model as `peftlab/peftlab-s`, an architecture PEFT Lab does not read as
// `google-bert/bert-base-uncased`, PEFT's LoRA fixture on peftlab-s as the adapter repo
// `peftlab/lora-peftlab-s`, an adapter repo with only a pickled adapter_model.bin as `old/bin-adapter`,
// and the Llama family in the real repos' layouts with tiny random weights written by transformers
// (src/lib/model/fixtures): `HuggingFaceTB/SmolLM2-135M` with one model.safetensors (tiny-llama) and
// `Qwen/Qwen2.5-0.5B` sharded, model.safetensors.index.json naming four shards (tiny-qwen2-sharded);
// and two faults, a gated repo `gated/model` and a download cut short, `broken/cut`.
import { createServer } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';

const port = Number(process.env.HUB_PORT ?? 4174);
const model = (f) => readFileSync(new URL(`../public/models/peftlab-s/${f}`, import.meta.url));
const adapter = (f) =>
  readFileSync(new URL(`../src/lib/peft/fixtures/peft-0.21-open/lora/${f}`, import.meta.url));
/** A fixture folder as a repo: its files at the root, as on the Hub (expected.json is the test's, not the repo's). */
const fixtureRepo = (name) => {
  const dir = new URL(`../src/lib/model/fixtures/${name}/`, import.meta.url);
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f !== 'expected.json')
      .map((f) => [f, readFileSync(new URL(f, dir))]),
  );
};
const repos = {
  'HuggingFaceTB/SmolLM2-135M': fixtureRepo('tiny-llama'),
  'Qwen/Qwen2.5-0.5B': fixtureRepo('tiny-qwen2-sharded'),
  'peftlab/lora-peftlab-s': {
    'adapter_config.json': adapter('adapter_config.json'),
    'adapter_model.safetensors': adapter('adapter_model.safetensors'),
  },
  'old/bin-adapter': {
    'adapter_config.json': adapter('adapter_config.json'),
    'adapter_model.bin': Buffer.from('a pickle'),
  },
  'peftlab/peftlab-s': {
    'config.json': model('config.json'),
    'model.safetensors': model('model.safetensors'),
    'tokenizer.json': model('tokenizer.json'),
  },
  'google-bert/bert-base-uncased': {
    'config.json': Buffer.from(
      '{"model_type": "bert", "architectures": ["BertForMaskedLM"], "vocab_size": 30522}',
    ),
  },
};
const server = createServer((req, res) => {
  // The app is served from another port: the Hub itself allows cross-origin reads, and lets pages
  // read why it refused (X-Error-Code), as huggingface.co does.
  res.setHeader('access-control-allow-origin', '*');
  res.setHeader('access-control-expose-headers', 'x-error-code, x-error-message');
  const m = /^\/([^/]+\/[^/]+)\/resolve\/[^/]+\/(.+)$/.exec(req.url ?? '');
  // Faults (e2e/faults.spec.ts): a gated repo refuses without a token; `broken/cut` has the bundled
  // model's config but its weights stop a third of the way, the connection closed under a true Content-Length.
  if (m?.[1] === 'gated/model') return res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end('gated');
  if (m?.[1] === 'broken/cut' && m[2] !== 'model.safetensors') {
    const file = repos['peftlab/peftlab-s'][m[2]];
    return file
      ? res.writeHead(200, { 'content-length': file.byteLength }).end(file)
      : res.writeHead(404).end();
  }
  if (m?.[1] === 'broken/cut') {
    const weights = repos['peftlab/peftlab-s']['model.safetensors'];
    res.writeHead(200, { 'content-length': weights.byteLength });
    return res.write(weights.subarray(0, weights.byteLength / 3), () => res.destroy());
  }
  const body = m ? repos[m[1]]?.[m[2]] : undefined;
  if (req.url === '/') return res.writeHead(200).end('hub test server');
  if (!body) return res.writeHead(404).end('Entry not found');
  res.writeHead(200, { 'content-length': body.byteLength }).end(body);
});
// HUB_PORT=0 takes a free port; the line says which (the CLI tests read it).
server.listen(port, '127.0.0.1', () => console.log(`hub test server on ${server.address().port}`));
