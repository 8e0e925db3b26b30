import { describe, expect, it } from 'vitest';
import { hashWithParam, parseHash } from './hash';

describe('hash codec', () => {
  it('splits the route from its query and writes one parameter back', () => {
    const h = parseHash('#/lab?task=spam&x=1');
    expect(h.route).toBe('#/lab');
    expect(h.params.get('task')).toBe('spam');
    expect(parseHash('#/lab').params.get('task')).toBeNull();
    expect(hashWithParam('#/lab?task=spam&x=1', 'task', 'brown-pos')).toBe('#/lab?task=brown-pos&x=1');
    expect(hashWithParam('', 'task', 'spam')).toBe('#/lab?task=spam');
  });
});
