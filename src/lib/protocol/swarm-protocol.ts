/**
 * The typed message map between the Swarm screen and its engine's worker (src/workers/swarm.worker.ts),
 * in the shape of the Lab's (lab-protocol.ts). The page starts each block worker itself (a worker it
 * can kill) and hands the engine a MessagePort to it with the name of the Web Lock the peer holds
 * while it lives: the engine learns of a peer's death by that lock, as the page learns of its own
 * workers' (src/app/worker-client.ts). Everything here is plain data, or a transferred port.
 */
import type { BackendInfo } from '../backend/backend';
import type { Gpt2Config } from '../model/config';
import type { SerializedError } from '../errors';
import type { PeerInfo } from '../swarm/protocol';
import type { LinkConditions } from '../swarm/transport';
import type { RoutingMode } from '../swarm/routing';

export type { LinkConditions, RoutingMode };

export interface SwarmModelSummary {
  id: string;
  nLayer: number;
  nEmbd: number;
  /** SHA-256 of config and weights (model-hash.ts): what peers announce. */
  modelHash: string;
  /** float32 bytes of each block's weights, for the screen. */
  blockBytes: number;
}

/**
 * Where a peer runs: a block worker of this tab, a block worker of another tab of the app (reached
 * through the tab broker, swarm-broker.worker.ts), or a `peft-lab swarm serve` process (WebSocket).
 */
export type PeerKind = 'worker' | 'tab' | 'ws';

/** A peer as the screen draws it. */
export interface PeerView {
  peerId: string;
  kind: PeerKind;
  /** ws://host:port for a serve process; empty for the others. */
  address: string;
  start: number;
  end: number;
  /** Measured tokens/s through its span. */
  throughput: number;
  alive: boolean;
  /** Its link's conditions (global unless set for this peer). */
  link: LinkConditions;
  /** This link's own conditions, not the global ones. */
  ownLink: boolean;
  /** Frames and bytes over its links since it joined. */
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  /** Mean request round trip (emulated link and compute) of its last operation, ms. */
  meanRttMs: number;
}

/** One hop of the chain a generation ended on. */
export interface HopView {
  peerId: string;
  start: number;
  end: number;
  requests: number;
  meanRttMs: number;
  bytesSent: number;
  bytesReceived: number;
}

export interface SwarmLogLine {
  /** ms since the engine started. */
  t: number;
  level: 'info' | 'failure' | 'recovery';
  message: string;
}

export interface SwarmGenerateReply {
  text: string;
  /** The same prompt through the whole model in this worker (no peers), for comparison. */
  localText: string;
  generatedIds: number[];
  localIds: number[];
  chain: HopView[];
  replays: number;
  failures: number;
  ms: number;
}

/** The methods that train through the swarm (client-held prompts, deep prompts, client-held LoRA). */
export const SWARM_METHODS = ['prompt-tuning', 'p-tuning', 'prefix-tuning', 'p-tuning-v2', 'lora'] as const;
export type SwarmMethod = (typeof SWARM_METHODS)[number];

export interface SwarmTrainRequest {
  method: SwarmMethod;
  steps: number;
  lr: number;
  batchSize: number;
  seqLen: number;
  seed: number;
  /** The app's base URL: the built-in Moby-Dick task's data is under it. */
  dataBaseUrl: string;
}

/** One optimizer step: its loss through the swarm, or in this worker alone (the reference). */
export interface SwarmTrainPoint {
  step: number;
  loss: number;
  where: 'swarm' | 'local';
}

export interface SwarmTrainReply {
  swarm: number[];
  local: number[];
  /** Largest |swarm - local| over the steps. */
  maxDiff: number;
  trainable: number;
  failures: number;
  swarmMs: number;
  localMs: number;
}

export interface SwarmRequests {
  init: [{ wasmBaseUrl: string }, BackendInfo];
  loadModel: [{ id: string; baseUrl: string }, SwarmModelSummary];
  /** A block worker the page started: `control` reaches it, `lock` is held by it while it lives. */
  addPeer: [
    {
      peerId: string;
      start: number;
      end: number;
      control: MessagePort;
      lock: string;
      kind: 'worker' | 'tab';
    },
    PeerView,
  ];
  /** A `peft-lab swarm serve` process at ws://host:port, with the token it was started with. */
  addRemote: [{ url: string; token: string }, PeerView];
  /** Conditions for one peer's link, or (peerId null) the global ones every link without its own uses. */
  setLink: [{ peerId: string | null; link: LinkConditions }, PeerView[]];
  setMode: [{ mode: RoutingMode }, void];
  generate: [{ prompt: string; maxNewTokens: number }, SwarmGenerateReply];
  /** The same run twice from the same seed: in this worker alone, then through the swarm. */
  train: [SwarmTrainRequest, SwarmTrainReply];
}

export type SwarmKind = keyof SwarmRequests;
export type SwarmRequestOf<K extends SwarmKind> = SwarmRequests[K][0];
export type SwarmReplyOf<K extends SwarmKind> = SwarmRequests[K][1];

export interface SwarmEvents {
  peers: PeerView[];
  log: SwarmLogLine;
  /** The chain chosen (at the start, and after each reroute). */
  chain: HopView[];
  /** Generation so far. */
  token: { text: string; count: number };
  trainStep: SwarmTrainPoint;
}
export type SwarmEventKind = keyof SwarmEvents;
export type SwarmEventSink = <E extends SwarmEventKind>(kind: E, data: SwarmEvents[E]) => void;

export type SwarmApi = {
  [K in SwarmKind]: (req: SwarmRequestOf<K>) => Promise<SwarmReplyOf<K>>;
};

/** What the engine sends a block worker over its control port, and what the worker answers. */
export interface PeerInit {
  config: Gpt2Config;
  /** The span's weights only: name, shape, values (buffers transferred). */
  weights: [string, number[], Float32Array][];
  start: number;
  end: number;
  modelHash: string;
  peerId: string;
  wasmBaseUrl: string;
}
export type ToPeer = { init: PeerInit } | { connect: MessagePort };
export type FromPeer = { ready: PeerInfo } | { failed: SerializedError };

/**
 * The tab broker (a SharedWorker every tab of the app reaches, src/workers/swarm-broker.worker.ts).
 * A tab that offers to host blocks starts a block worker and hands the broker the worker's control
 * port; a tab whose swarm takes the offer gets that port, so from then on the two tabs talk directly
 * over a MessageChannel, as with a block worker of its own. `lock` is the Web Lock the block worker
 * holds while it lives (Web Locks are shared by the tabs of an origin): the taker learns of the
 * offering tab's death, closed or crashed, as it learns of its own workers'.
 */
export interface TabOffer {
  offerId: string;
  start: number;
  end: number;
  lock: string;
}
export type ToBroker =
  /** Offer this tab's block worker (its control port travels with the message). */
  | { offer: TabOffer }
  /** Take an offer: the broker answers `taken` with its control port, or `gone`. */
  | { take: string }
  /** Withdraw an offer not yet taken. */
  | { withdraw: string };
export type FromBroker =
  /** The offers not yet taken (sent to every tab on each change). */
  | { offers: TabOffer[] }
  /** To the taker: the offer and (in the message's ports) its control port. */
  | { taken: TabOffer }
  /** To the taker: the offer was taken by another tab, withdrawn, or its tab closed. */
  | { gone: string }
  /** To the offering tab: its offer was taken. */
  | { joined: string };
