/**
 * The Compare screen's worker: the race engine behind the typed protocol (compare-protocol.ts).
 * Its own worker, so a race and the Lab's training each have a thread and a model of their own.
 */
import { CompareEngine } from '../lib/engine/compare-engine';
import { browserFetchBytes } from '../lib/engine/lab-engine';
import type { CompareApi } from '../lib/protocol/compare-protocol';
import { post, serve } from './serve';

serve<CompareApi>(new CompareEngine(browserFetchBytes, (event, data) => post({ event, data })));
