/**
 * Method flags from the catalog: a switch that PEFT has on by default is turned off with `--no-`,
 * and a field of one method given to another is refused, naming both.
 */
import { describe, expect, it } from 'vitest';
import { parseCommand } from './args';
import { buildConfig, methodOptions } from './method-flags';
import { methodByCliName } from '../lib/peft/registry';
import { UsageError } from '../lib/errors';

const OPTIONS = { ...methodOptions(), method: { type: 'string' as const } };

describe('method flags', () => {
  it("turns off OFT's Cayley-Neumann series with --no-use-cayley-neumann and sizes blocks by r", () => {
    const oft = methodByCliName('oft');
    const values = parseCommand(
      'train',
      ['--method', 'oft', '--no-use-cayley-neumann', '--r', '4', '--oft-block-size', '0', '--block-share'],
      OPTIONS,
    );
    const config = buildConfig(values, oft, oft.defaults('CAUSAL_LM')) as unknown as Record<string, unknown>;
    expect(config).toMatchObject({ useCayleyNeumann: false, r: 4, oftBlockSize: 0, blockShare: true });
    // Untouched switches keep PEFT's defaults.
    expect(config.coft).toBe(false);
  });

  it('refuses a field the method does not have', () => {
    const values = parseCommand('train', ['--method', 'lora', '--coft'], OPTIONS);
    const lora = methodByCliName('lora');
    expect(() => buildConfig(values, lora, lora.defaults('CAUSAL_LM'))).toThrow(UsageError);
    expect(() => buildConfig(values, lora, lora.defaults('CAUSAL_LM'))).toThrow(/--coft/);
  });
});
