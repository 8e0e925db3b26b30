/**
 * The tasks `peft-lab train --task NAME` knows. A task names its data and how it is trained; only
 * causal-LM corpora exist so far (classification tasks will add a `kind` here).
 */
import { fileURLToPath } from 'node:url';
import { UsageError } from '../lib/errors';
import type { TaskType } from '../lib/peft/types';

export interface CliTask {
  name: string;
  description: string;
  kind: 'causal-lm';
  taskType: TaskType;
  /** Folder holding train.txt and validation.txt. */
  dir: string;
}

const dataDir = (id: string): string => fileURLToPath(new URL(`../../public/data/${id}/`, import.meta.url));

export const TASKS: readonly CliTask[] = [
  {
    name: 'moby-dick',
    description: 'Continue Melville: causal-LM fine-tuning on Moby-Dick chapters',
    kind: 'causal-lm',
    taskType: 'CAUSAL_LM',
    dir: dataDir('moby-dick'),
  },
];

export const DEFAULT_TASK = 'moby-dick';

export function taskByName(name: string): CliTask {
  const task = TASKS.find((t) => t.name === name);
  if (!task) {
    throw new UsageError(
      `unknown task ${JSON.stringify(name)} for --task; known tasks: ${TASKS.map((t) => t.name).join(', ')}`,
    );
  }
  return task;
}
