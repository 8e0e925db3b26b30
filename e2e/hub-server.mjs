// A local server with the HuggingFace Hub's URL layout (/{owner}/{name}/resolve/{rev}/{file}) for the
// browser tests: this machine has no internet, and the app's real download code must still run.
// Serves the bundled model as `peftlab/peftlab-s`, and a non-GPT-2 config as `meta/llama-tiny`.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const port = Number(process.env.HUB_PORT ?? 4174);
const model = (f) => readFileSync(new URL(`../public/models/peftlab-s/${f}`, import.meta.url));
const repos = {
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
