/** The Learn section's lessons, in the order of the survey's ideas (issue 7). */
import type { Lesson } from '../types';
import { loraLesson } from './lora';

export const LESSONS: readonly Lesson[] = [loraLesson];

export function findLesson(id: string): Lesson | undefined {
  return LESSONS.find((l) => l.id === id);
}
