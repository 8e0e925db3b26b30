/** Full fine-tuning's config: only the fields every config has (PEFT has no type for it; FULL is ours). */
import type { PeftConfigBase } from '../types';
import type { TaskType } from '../../data/tasks/registry';

export interface FullConfig extends PeftConfigBase {
  peftType: 'FULL';
}

export function fullDefaults(taskType: TaskType): FullConfig {
  return { peftType: 'FULL', taskType, baseModelNameOrPath: null, inferenceMode: false };
}
