import { describe, it, expect } from 'vitest';
import { int8Pages, pageFormatLabel } from './page-format';

describe('page format', () => {
  it('automatic: int8 where stage 3 reads its pages from IndexedDB, float32 in page memory', () => {
    expect(int8Pages({ stage: 3, int8: 'auto', device: 'indexeddb' })).toBe(true);
    expect(int8Pages({ stage: 3, int8: 'auto' })).toBe(true); // IndexedDB is the default device
    expect(int8Pages({ stage: 3, int8: 'auto', device: 'memory' })).toBe(false);
    expect(int8Pages({ stage: 2, int8: 'auto', device: 'indexeddb' })).toBe(false); // no layer pages
    expect(pageFormatLabel({ stage: 3, int8: 'auto' })).toBe('int8 pages (automatic)');
    expect(pageFormatLabel({ stage: 3, int8: 'auto', device: 'memory' })).toBe('float32 pages (automatic)');
  });

  it('keeps a choice made', () => {
    expect(int8Pages({ stage: 3, int8: false, device: 'indexeddb' })).toBe(false);
    expect(int8Pages({ stage: 3, int8: true, device: 'memory' })).toBe(true);
    expect(pageFormatLabel({ stage: 3, int8: false })).toBe('float32 pages');
    expect(pageFormatLabel({ stage: 3, int8: true, device: 'memory' })).toBe('int8 pages');
  });
});
