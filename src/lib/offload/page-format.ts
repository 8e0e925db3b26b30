/**
 * Whether stage 3 pages the frozen layers as int8 or as float32 (no tfjs here: the Lab's form and the
 * Offload screen read it too). `'auto'`, the default, takes int8 where reads dominate a paged step:
 * pages read back from IndexedDB, where a float32 layer costs a disk read of four times the bytes
 * and, under a budget of one layer, leaves no room to read the next one ahead (layer-pager.ts);
 * float32 where pages stay in the page's memory, where a read costs next to nothing and int8 would
 * only add rounding. A choice of true or false is kept as made. float32 pages train exactly as the
 * resident model; int8 pages round the frozen weights (losses within about 1%, offload.test.ts),
 * and the model is put back exactly either way when the run ends.
 */
export type Int8Choice = boolean | 'auto';

export interface PageFormatRequest {
  stage: number;
  int8: Int8Choice;
  device?: 'memory' | 'indexeddb';
}

/** True when the run's layer pages are int8. */
export function int8Pages(req: PageFormatRequest): boolean {
  if (req.int8 !== 'auto') return req.int8;
  return req.stage === 3 && (req.device ?? 'indexeddb') === 'indexeddb';
}

/** How the Lab and the Offload screen name the page format of a request. */
export function pageFormatLabel(req: PageFormatRequest): string {
  const format = int8Pages(req) ? 'int8 pages' : 'float32 pages';
  return req.int8 === 'auto' ? `${format} (automatic)` : format;
}
