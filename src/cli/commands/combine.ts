/**
 * `peft-lab combine`: PEFT's `add_weighted_adapter` for LoRA adapters, on their files (no model
 * needed): a new adapter whose update is the weighted combination (src/lib/peft/lora/combine.ts).
 */
import { UsageError } from '../../lib/errors';
import { list, requiredStr, str } from '../args';
import type { Command } from '../command';
import { GLOBAL_HELP, print } from '../command';
import { prepareOutDir, readAdapterDir, writeAdapterDir } from '../model-dir';

export const combine: Command = {
  name: 'combine',
  summary: "weighted combination of LoRA adapters (PEFT's add_weighted_adapter)",
  usage: `Usage: peft-lab combine --adapters DIR,DIR,... --weights W,W,... --out DIR [--type TYPE]

  --adapters LIST     two or more LoRA adapter folders trained on the same base with the same targetModules
  --weights LIST      one weight per adapter (negative subtracts)
  --type TYPE         cat (default): exact weighted sum of the updates, ranks add up;
                      linear: PEFT's task arithmetic on A and B, equal ranks needed;
                      svd: the exact weighted sum truncated to --svd-rank singular directions;
                      ties, dare_linear, dare_ties, magnitude_prune: PEFT's merge_utils on A and B
                      (equal ranks), pruned to --density
  --density X         fraction of entries kept by ties / dare / magnitude_prune (default 1)
  --majority-sign-method total|frequency   how ties / dare_ties elect signs (default total)
  --svd-rank N        rank of the svd result (default: the largest input rank)
  --svd-clamp Q       clamp the svd result's entries at their Q quantile (default: none)
  --seed N            seed of dare's random masks (default 1)
  --out DIR           where to write the combined adapter

${GLOBAL_HELP}`,
  options: {
    adapters: { type: 'string' },
    weights: { type: 'string' },
    type: { type: 'string' },
    density: { type: 'string' },
    'majority-sign-method': { type: 'string' },
    'svd-rank': { type: 'string' },
    'svd-clamp': { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  },
  async run(values) {
    requiredStr(values, 'adapters', 'the LoRA adapter folders to combine');
    requiredStr(values, 'weights', 'one weight per adapter');
    const out = requiredStr(values, 'out', 'the folder to write the combined adapter to');
    const dirs = list(values, 'adapters')!;
    const weights = list(values, 'weights')!.map((w) => {
      const n = Number(w);
      if (!Number.isFinite(n)) throw new UsageError(`--weights: ${JSON.stringify(w)} is not a number`);
      return n;
    });
    const { COMBINATION_TYPES } = await import('../../lib/peft/lora/combine-types');
    const type = str(values, 'type') ?? 'cat';
    if (!(COMBINATION_TYPES as readonly string[]).includes(type))
      throw new UsageError(
        `--type must be one of ${COMBINATION_TYPES.join(', ')}, got ${JSON.stringify(type)}`,
      );
    const num = (flag: string): number | undefined => {
      const v = str(values, flag);
      if (v === undefined) return undefined;
      const n = Number(v);
      if (!Number.isFinite(n)) throw new UsageError(`--${flag}: ${JSON.stringify(v)} is not a number`);
      return n;
    };
    const options = {
      density: num('density'),
      majoritySignMethod: str(values, 'majority-sign-method') as 'total' | 'frequency' | undefined,
      svdRank: num('svd-rank'),
      svdClamp: num('svd-clamp'),
      seed: num('seed'),
    };
    const { combineAdapterFiles } = await import('../../lib/io/combine-files');
    const { AdapterCombineError, PeftConfigError } = await import('../../lib/errors');
    const inputs = dirs.map((d) => {
      const files = readAdapterDir(d);
      return { name: files.source, config: files.config, weights: files.weights };
    });
    let combined;
    try {
      combined = combineAdapterFiles(inputs, weights, type as (typeof COMBINATION_TYPES)[number], options);
    } catch (e) {
      if (e instanceof PeftConfigError || e instanceof AdapterCombineError) throw new UsageError(e.message);
      throw e;
    }
    prepareOutDir(out);
    const written = writeAdapterDir(out, { config: combined.config, weights: combined.weights });
    print(`combined ${dirs.length} LoRA adapters (${type}, r ${combined.r}) into ${written.join(', ')}`);
  },
};
