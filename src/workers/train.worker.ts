/**
 * The training worker: a thin shell that connects the typed protocol (lab-protocol.ts) to the
 * in-process engine.
 */
import { LabEngine, browserFetchBytes } from '../lib/engine/lab-engine';
import type { LabApi } from '../lib/protocol/lab-protocol';
import { post, serve } from './serve';

serve<LabApi>(new LabEngine(browserFetchBytes, (event, data) => post({ event, data })));
