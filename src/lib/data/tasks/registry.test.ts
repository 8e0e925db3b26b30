import { describe, expect, it } from 'vitest';
import { TASKS, taskById } from './registry';

describe('task registry', () => {
  it('has unique ids and finds tasks by id', () => {
    expect(new Set(TASKS.map((t) => t.id)).size).toBe(TASKS.length);
    expect(taskById('spam')?.taskType).toBe('SEQ_CLS');
    expect(taskById('nope')).toBeUndefined();
  });

  it('gives classification tasks labels and metrics that fit their type', () => {
    for (const t of TASKS) {
      expect(t.metrics.length).toBeGreaterThan(0);
      expect(t.dataDir).toBe(`data/${t.id}`);
      if (t.taskType === 'CAUSAL_LM') {
        expect(t.labels).toEqual([]);
        expect(t.metrics).toEqual(['perplexity']);
      } else {
        expect(new Set(t.labels).size).toBe(t.labels.length);
        expect(t.labels.length).toBeGreaterThan(1);
      }
      if (t.taskType === 'TOKEN_CLS') expect(t.metrics).toContain('tokenAccuracy');
      if (t.metrics.some((m) => m === 'binaryF1')) {
        expect(t.labels).toHaveLength(2);
        expect(t.labels).toContain(taskById(t.id)?.positiveLabel);
      }
    }
  });
});
