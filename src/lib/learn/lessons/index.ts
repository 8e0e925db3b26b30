/** The Learn section's lessons, in the order of the survey's ideas (issue 7). */
import type { Lesson } from '../types';
import { adaloraLesson } from './adalora';
import { loraLesson } from './lora';
import { offloadLesson } from './offload';
import { pTuningLesson } from './p-tuning';
import { pTuningV2Lesson } from './p-tuning-v2';
import { prefixTuningLesson } from './prefix-tuning';
import { promptTuningLesson } from './prompt-tuning';
import { swarmLesson } from './swarm';
import { whatChangesLesson } from './what-changes';

export const LESSONS: readonly Lesson[] = [
  whatChangesLesson,
  promptTuningLesson,
  prefixTuningLesson,
  loraLesson,
  pTuningLesson,
  pTuningV2Lesson,
  adaloraLesson,
  offloadLesson,
  swarmLesson,
];

export function findLesson(id: string): Lesson | undefined {
  return LESSONS.find((l) => l.id === id);
}
