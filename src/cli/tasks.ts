/**
 * The tasks `peft-lab train --task NAME` knows: the lib's built-in task table
 * (src/lib/data/tasks/registry.ts), with each task's data folder on disk.
 */
import { fileURLToPath } from 'node:url';
import { UsageError } from '../lib/errors';
import { TASKS as LIB_TASKS } from '../lib/data/tasks/registry';
import type { TaskInfo } from '../lib/data/tasks/registry';

export interface CliTask {
  name: string;
  description: string;
  info: TaskInfo;
  /** Folder holding the task's split files, with a trailing slash. */
  dir: string;
}

const dataDir = (rel: string): string => fileURLToPath(new URL(`../../public/${rel}/`, import.meta.url));

export const TASKS: readonly CliTask[] = LIB_TASKS.map((t) => ({
  name: t.id,
  description: `${t.taskType}, ${t.metrics[0]}`,
  info: t,
  dir: dataDir(t.dataDir),
}));

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
