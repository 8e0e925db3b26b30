/**
 * `peft-lab compare` end to end: spawns `node bin/peft-lab.mjs compare` on the bundled smallest
 * model, with a few steps, and reads its table, JSON and CSV; then the usage errors.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/peft-lab.mjs');
const MODEL = join(ROOT, 'public/models/peftlab-s');

let tmp = '';
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'peft-lab-compare-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'compare', ...args], { cwd: tmp, timeout: 120_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface RaceJson {
  task: string;
  metric: string;
  settings: { steps: number; equalBudget: number | null };
  lanes: {
    name: string;
    trainableParams: number;
    steps: { loss: number }[];
    evals: { step: number }[];
    ledger: { measured: { total: number } | null };
  }[];
  results: { name: string; metric: number }[];
  verdicts: string[];
}

describe('peft-lab compare', () => {
  it('races three methods, prints the table and writes JSON and CSV', async () => {
    const json = join(tmp, 'race.json');
    const csv = join(tmp, 'race.csv');
    const r = await cli([
      ...['--model', MODEL, '--methods', 'lora,prompt-tuning,ia3', '--task', 'spam'],
      ...['--steps', '4', '--batch-size', '2', '--seq-len', '32', '--eval-every', '2'],
      ...['--json', json, '--csv', csv],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(
      /^method\s+trainable\s+%\s+peak memory\s+ms\/step\s+tok\/s\s+final loss\s+accuracy/,
    );
    for (const name of ['LoRA', 'Prompt tuning', 'IA3'])
      expect(r.stdout).toMatch(new RegExp(`^${name} `, 'm'));
    expect(r.stdout).toMatch(/won on held-out accuracy|tied on held-out accuracy/);
    const j = JSON.parse(readFileSync(json, 'utf8')) as RaceJson;
    expect(j.task).toBe('spam');
    expect(j.metric).toBe('accuracy');
    expect(j.lanes).toHaveLength(3);
    for (const l of j.lanes) {
      expect(l.steps).toHaveLength(4);
      expect(l.evals.map((e) => e.step)).toEqual([0, 2, 4]);
      expect(l.ledger.measured!.total).toBeGreaterThan(0);
    }
    const rows = readFileSync(csv, 'utf8').trimEnd().split('\r\n');
    expect(rows).toHaveLength(4);
    expect(rows[0]).toMatch(/^name,method,trainableParams/);
  });

  it('sizes methods to one budget with --equal-budget', async () => {
    const json = join(tmp, 'equal.json');
    const r = await cli([
      ...['--model', MODEL, '--methods', 'lora,prompt-tuning', '--task', 'moby-dick', '--equal-budget'],
      ...['--steps', '1', '--batch-size', '1', '--seq-len', '16', '--json', json],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(readFileSync(json, 'utf8')) as RaceJson;
    const [lora, pt] = j.lanes;
    expect(j.settings.equalBudget).toBe(pt!.trainableParams);
    expect(Math.abs(lora!.trainableParams - pt!.trainableParams) / pt!.trainableParams).toBeLessThan(0.5);
  });

  it.concurrent.each([
    [['--methods', 'lora,nope'], 'unknown method "nope"'],
    [['--methods', 'lora', '--lr', 'lora=-1'], '--lr: each item is METHOD=RATE'],
    [['--methods', 'lora', '--lr', 'ia3=1e-3'], '--lr: ia3 is not one of --methods'],
    [
      ['--methods', 'lora', '--config', '{"lora":{"rank":4}}'],
      'lora has no setting "rank"; its settings are r,',
    ],
    [['--methods', 'lora', '--config', '{oops'], '--config is not valid JSON'],
    [['--methods', 'p-tuning-v2'], 'P-tuning v2 does not train CAUSAL_LM tasks'],
    [[], '--methods is required'],
  ])('refuses %j with one line naming the fault', async (args, mention) => {
    const r = await cli(['--model', MODEL, '--steps', '1', ...args]);
    expect(r.code).toBe(2);
    const errLines = r.stderr
      .trimEnd()
      .split('\n')
      .filter((l) => l.startsWith('peft-lab: '));
    expect(errLines, r.stderr).toHaveLength(1);
    expect(errLines[0]).toContain(mention);
  });
});
