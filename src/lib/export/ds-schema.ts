/**
 * A schema check of the ds_config.json we write, since DeepSpeed itself cannot be installed where
 * CI runs: the keys we emit with their types and ranges as DeepSpeed's configuration reference
 * gives them (https://www.deepspeed.ai/docs/config-json/), no other key, plus the rules between
 * them DeepSpeed enforces (parameter offload only at stage 3, optimizer offload from stage 1, an
 * NVMe target needs its nvme_path). Returns every problem found, each naming its field.
 */
type Rule =
  | { type: 'int'; min: number }
  | { type: 'number'; min: number }
  | { type: 'bool' }
  | { type: 'string' }
  | { type: 'enum'; values: readonly (string | number)[] }
  | { type: 'object'; props: Record<string, Rule>; required?: readonly string[] };

const OFFLOAD: Rule = {
  type: 'object',
  props: {
    device: { type: 'enum', values: ['cpu', 'nvme', 'none'] },
    nvme_path: { type: 'string' },
    pin_memory: { type: 'bool' },
  },
  required: ['device'],
};

/** The part of DeepSpeed's config schema that toDeepSpeedConfig writes. */
export const DS_CONFIG_SCHEMA: Rule = {
  type: 'object',
  props: {
    train_micro_batch_size_per_gpu: { type: 'int', min: 1 },
    gradient_accumulation_steps: { type: 'int', min: 1 },
    gradient_clipping: { type: 'number', min: 0 },
    zero_force_ds_cpu_optimizer: { type: 'bool' },
    zero_optimization: {
      type: 'object',
      props: {
        stage: { type: 'enum', values: [0, 1, 2, 3] },
        offload_optimizer: OFFLOAD,
        offload_param: OFFLOAD,
      },
      required: ['stage'],
    },
  },
  required: ['train_micro_batch_size_per_gpu', 'gradient_accumulation_steps', 'zero_optimization'],
};

function check(rule: Rule, v: unknown, at: string, out: string[]): void {
  const bad = (want: string): void => void out.push(`${at} must be ${want}, got ${JSON.stringify(v)}`);
  switch (rule.type) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < rule.min) bad(`an integer >= ${rule.min}`);
      return;
    case 'number':
      if (typeof v !== 'number' || !Number.isFinite(v) || v < rule.min) bad(`a number >= ${rule.min}`);
      return;
    case 'bool':
      if (typeof v !== 'boolean') bad('true or false');
      return;
    case 'string':
      if (typeof v !== 'string' || v === '') bad('a non-empty string');
      return;
    case 'enum':
      if (!rule.values.includes(v as string | number))
        bad(`one of ${rule.values.map((x) => JSON.stringify(x)).join(', ')}`);
      return;
    case 'object': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('an object');
      const obj = v as Record<string, unknown>;
      for (const k of rule.required ?? []) if (!(k in obj)) out.push(`${at ? `${at}.` : ''}${k} is required`);
      for (const [k, x] of Object.entries(obj)) {
        const sub = rule.props[k];
        const path = at ? `${at}.${k}` : k;
        if (!sub) out.push(`${path} is not a key this schema knows (a typo, or one DeepSpeed would reject)`);
        else check(sub, x, path, out);
      }
    }
  }
}

export function validateDeepSpeedConfig(json: unknown): string[] {
  const out: string[] = [];
  check(DS_CONFIG_SCHEMA, json, '', out);
  if (out.length > 0) return out;
  const zero = (json as { zero_optimization: Record<string, { device: string; nvme_path?: string }> })
    .zero_optimization;
  const stage = zero.stage as unknown as number;
  const opt = zero.offload_optimizer;
  const param = zero.offload_param;
  if (param && param.device !== 'none' && stage !== 3)
    out.push(`zero_optimization.offload_param needs stage 3 (stage is ${stage})`);
  if (opt && opt.device !== 'none' && stage < 1)
    out.push('zero_optimization.offload_optimizer needs stage 1 or more (stage is 0)');
  for (const [name, o] of [
    ['offload_optimizer', opt],
    ['offload_param', param],
  ] as const) {
    if (o?.device === 'nvme' && !o.nvme_path)
      out.push(`zero_optimization.${name}.nvme_path is required for device "nvme"`);
  }
  return out;
}
