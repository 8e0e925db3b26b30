// A local server with the HuggingFace Hub's URL layout (/{owner}/{name}/resolve/{rev}/{file}) for the
// browser tests: this machine has no internet, and the app's real download code must still run.
// Serves the bundled model as `peftlab/peftlab-s`, a non-GPT-2 config as `meta/llama-tiny`, PEFT's
// LoRA fixture on peftlab-s as the adapter repo `peftlab/lora-peftlab-s`, and an adapter repo with
// only a pickled adapter_model.bin as `old/bin-adapter`.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const port = Number(process.env.HUB_PORT ?? 4174);
const model = (f) => readFileSync(new URL(`../public/models/peftlab-s/${f}`, import.meta.url));
const adapter = (f) =>
  readFileSync(new URL(`../src/lib/peft/fixtures/peft-0.21-open/lora/${f}`, import.meta.url));
const repos = {
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
  'meta/llama-tiny': { 'config.json': Buffer.from('{"model_type": "llama", "vocab_size": 32000}') },
};
createServer((req, res) => {
  // The app is served from another port: the Hub itself allows cross-origin reads.
  res.setHeader('access-control-allow-origin', '*');
  const m = /^\/([^/]+\/[^/]+)\/resolve\/[^/]+\/(.+)$/.exec(req.url ?? '');
  const body = m ? repos[m[1]]?.[m[2]] : undefined;
  if (req.url === '/') return res.writeHead(200).end('hub test server');
  if (!body) return res.writeHead(404).end('Entry not found');
  res.writeHead(200, { 'content-length': body.byteLength }).end(body);
}).listen(port, '127.0.0.1', () => console.log(`hub test server on ${port}`));
