/** `peft-lab generate`: continue a prompt with the base model, or with an adapter on top. */
import { resolveModelArg } from '../hub';
import { UsageError } from '../../lib/errors';
import { int, num, requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print, startBackend } from '../command';
import { readAdapterDir, readModelDir } from '../model-dir';
import { SWARM_HELP, SWARM_OPTIONS, swarmClient, swarmFlags } from '../swarm-client';

export const generate: Command = {
  name: 'generate',
  summary: 'continue a prompt with the model (and an adapter)',
  usage: `Usage: peft-lab generate --model DIR --prompt TEXT [options]

Options:
  --model DIR|REPO       model folder (config.json, model.safetensors, tokenizer.json), or a Hub repo
                         id (owner/name), downloaded once into ~/.cache/peft-lab/hub (HF_ENDPOINT: a mirror)
  --adapter DIR          PEFT adapter folder (adapter_config.json, adapter_model.safetensors)
  --prompt TEXT          text to continue
  --max-new-tokens N     tokens to generate (default 40)
  --temperature T        0 = greedy (default 0)
  --top-k K              sample only from the K most likely tokens
  --top-p P              sample from the smallest set of tokens whose probability reaches P
  --repetition-penalty X transformers' repetition_penalty: tokens already seen are made less likely
                         (1 = off, the default; 1.1-1.3 is usual); not with --swarm
  --seed S               sampling seed (default 0); the same seed gives the same text
  --json                 print one JSON line: {"prompt_ids", "generated_ids", "text"}
${SWARM_HELP}

${GLOBAL_HELP}`,
  options: {
    model: { type: 'string' },
    adapter: { type: 'string' },
    prompt: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'repetition-penalty': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean' },
    ...SWARM_OPTIONS,
  },
  async run(values, flags) {
    const dir = requiredStr(values, 'model', 'the model folder to generate with');
    const prompt = requiredStr(values, 'prompt', 'the text to continue');
    const opts = {
      maxNewTokens: int(values, 'max-new-tokens', 40, { min: 1 }),
      temperature: num(values, 'temperature', 0, { min: 0 }),
      topK: int(values, 'top-k', undefined, { min: 1 }),
      topP: num(values, 'top-p', undefined, { min: 0, max: 1, exclusiveMin: true }),
      repetitionPenalty: num(values, 'repetition-penalty', 1, { min: 0, exclusiveMin: true }),
      seed: int(values, 'seed', 0, { min: 0, max: 2 ** 32 - 1 }),
    };
    const swarm = swarmFlags(values);
    if (swarm && opts.repetitionPenalty !== 1) {
      // The swarm client samples on its own path (src/lib/swarm/client.ts), without the penalty.
      throw new UsageError(
        '--repetition-penalty is not taken with --swarm yet: leave it out, or run without --swarm',
      );
    }
    const adapterPath = str(values, 'adapter');
    const modelFiles = readModelDir(await resolveModelArg(dir));
    const adapterFiles = adapterPath === undefined ? null : readAdapterDir(adapterPath);

    await startBackend(flags);
    const { loadModel, needTokenizer } = await import('../load');
    const { loadAdapter } = await import('../../lib/io/peft-format');
    const { adapterDecorator, reservedPositions } = await import('../../lib/peft/forward');
    const { generate: run } = await import('../../lib/model/generate');
    const m = loadModel(modelFiles);
    const tokenizer = needTokenizer(m, 'generate');
    const adapter = adapterFiles ? loadAdapter(m.model, adapterFiles, adapterFiles.source) : null;
    const promptIds = tokenizer.encode(prompt);
    if (promptIds.length === 0) {
      throw new UsageError(`--prompt ${JSON.stringify(prompt)} gives no tokens with ${dir}/tokenizer.json`);
    }

    // Text mode streams: each new token's text is written as soon as it is whole (TextStream holds
    // a multi-byte character split across tokens until its last byte arrives).
    const { TextStream } = await import('../../lib/tokenizer/text-stream');
    const stream = new TextStream((ids) => tokenizer.decode(ids));
    if (!values.json) process.stdout.write(prompt);
    const genOpts = {
      ...opts,
      eosTokenId: tokenizer.eosTokenId,
      reservedPositions: reservedPositions(adapter),
      onToken: (id: number) => {
        const piece = stream.push(id);
        if (!values.json) process.stdout.write(piece);
      },
    };
    let generated: number[];
    if (swarm) {
      // The blocks run on the peers; embeddings, final norm and head here, with the same sampling.
      const { generateThroughSwarm } = await import('../../lib/swarm/client');
      const { requireGpt2 } = await import('../../lib/model/decoder');
      const client = await swarmClient(
        requireGpt2(m.model, 'The swarm'),
        swarm,
        (line) => void process.stderr.write(`${line}\n`),
      );
      try {
        generated = await generateThroughSwarm(client, promptIds, genOpts, adapter);
      } finally {
        client.close();
      }
    } else generated = await run(m.model, promptIds, genOpts, adapterDecorator(m.model, adapter));
    const text = tokenizer.decode(generated);
    adapter?.dispose();
    m.model.dispose();
    if (values.json) {
      print(JSON.stringify({ prompt_ids: promptIds, generated_ids: generated, text }));
      return;
    }
    process.stdout.write(`${text.startsWith(stream.text) ? text.slice(stream.text.length) : ''}\n`);
  },
};
