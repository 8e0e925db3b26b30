/**
 * The Swarm screen's worker: the swarm's client side and its directory (swarm-engine.ts) behind
 * the typed protocol (swarm-protocol.ts). The block workers are threads of their own (peer.worker.ts).
 */
import { browserFetchBytes } from '../lib/engine/lab-engine';
import { SwarmEngine } from '../lib/engine/swarm-engine';
import type { SwarmApi } from '../lib/protocol/swarm-protocol';
import { post, serve } from './serve';

serve<SwarmApi>(new SwarmEngine(browserFetchBytes, (event, data) => post({ event, data })));
