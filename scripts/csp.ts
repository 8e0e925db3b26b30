/**
 * The app's Content-Security-Policy, written into the built index.html as a <meta> (so any static
 * host enforces it) and sent as a header by `vite` and `vite preview` (which also covers the workers,
 * whose own responses a <meta> cannot reach).
 *
 * Scripts come from the app's own origin only; 'wasm-unsafe-eval' lets WebAssembly compile (tfjs's
 * wasm backend) without allowing eval, and blob: is the threaded wasm backend's pthread worker, which
 * tfjs builds from its own code. Connections go to the app's origin and the Hub: huggingface.co with
 * the hosts its `resolve` URLs redirect to (cdn-lfs*.huggingface.co, *.hf.co, cas-bridge.xethub.hf.co).
 *
 * A mirror given with `?hub=` is known only at run time, and a policy a page writes for itself at run
 * time would let any link widen it. So the allowed mirrors are fixed when the app is built: a
 * loopback mirror (http://localhost or 127.0.0.1, any port: a mirror on one's own machine, and the
 * tests' stand-in) always, and others listed, space-separated, in PEFT_LAB_HUB_MIRRORS at build time
 * (`PEFT_LAB_HUB_MIRRORS="https://hf-mirror.com" vite build`). Any other ?hub= is refused by the browser.
 *
 * Swarm peers (`peft-lab swarm serve`, reached over WebSocket from the Swarm screen's worker) follow
 * the same rule: ws:// on this machine (localhost, 127.0.0.1, any port) always, and the peers of a
 * LAN listed in PEFT_LAB_SWARM_PEERS at build time (`PEFT_LAB_SWARM_PEERS="ws://192.168.1.20:8765"`).
 */
import type { Plugin } from 'vite';

export const HUB_HOSTS = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co'];
export const LOOPBACK_MIRRORS = ['http://localhost:*', 'http://127.0.0.1:*'];
export const LOOPBACK_PEERS = ['ws://localhost:*', 'ws://127.0.0.1:*'];

export function contentSecurityPolicy(
  mirrors: readonly string[] = [],
  peers: readonly string[] = [],
): string {
  const connect = ["'self'", ...HUB_HOSTS, ...LOOPBACK_MIRRORS, ...mirrors, ...LOOPBACK_PEERS, ...peers];
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval' blob:",
    "worker-src 'self' blob:",
    `connect-src ${connect.join(' ')}`,
    // Model cards may show the Hub's images; charts and icons are data: or blob: URLs.
    `img-src 'self' data: blob: ${HUB_HOSTS.join(' ')}`,
    // Svelte writes style attributes and uPlot its own style rules: styles, unlike scripts, cannot run code.
    "style-src 'self' 'unsafe-inline'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join('; ');
}

/** Mirrors from PEFT_LAB_HUB_MIRRORS: origins only (a path or a quote would change the policy). */
export function mirrorsFromEnv(value = process.env.PEFT_LAB_HUB_MIRRORS ?? ''): string[] {
  const out: string[] = [];
  for (const m of value.split(/\s+/).filter(Boolean)) {
    const url = new URL(m); // throws on a typo, failing the build rather than the download
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new Error(`PEFT_LAB_HUB_MIRRORS: ${m} is not an http(s) origin`);
    out.push(url.origin);
  }
  return out;
}

/** Swarm peers from PEFT_LAB_SWARM_PEERS: ws(s)://host[:port] only (a path or a quote would change the policy). */
export function peersFromEnv(value = process.env.PEFT_LAB_SWARM_PEERS ?? ''): string[] {
  const out: string[] = [];
  for (const p of value.split(/\s+/).filter(Boolean)) {
    const url = new URL(p); // throws on a typo, failing the build rather than the connection
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
      throw new Error(`PEFT_LAB_SWARM_PEERS: ${p} is not a ws:// or wss:// address`);
    out.push(`${url.protocol}//${url.host}`);
  }
  return out;
}

/** Puts the policy into the built index.html (frame-ancestors and report-uri cannot go in a <meta>). */
export function cspMeta(policy: string): Plugin {
  return {
    name: 'peft-lab-csp',
    apply: 'build',
    transformIndexHtml: () => [
      {
        tag: 'meta',
        attrs: { 'http-equiv': 'Content-Security-Policy', content: policy },
        injectTo: 'head-prepend',
      },
    ],
  };
}
