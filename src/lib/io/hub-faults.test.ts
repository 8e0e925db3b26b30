/**
 * Every way a Hub download goes wrong, each injected by a real local server (fault-hub.ts) that the
 * test starts and stops: 401 and 403 (gated and private repos), 404, 5xx, a web page where a file
 * was asked for, a truncated body, a wrong Content-Length, a stalled server and one that goes away
 * mid-download. Each is a named HubError subclass whose message says what to do; none returns bytes.
 * What is cached (or not) after each is checked in engine/hub-cache.test.ts and cli/hub-faults.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { downloadHubAdapter, downloadHubModel, DEFAULT_HUB_TIMEOUT_MS } from './hub';
import type { HubOptions } from './hub';
import { startFaultHub } from './fault-hub';
import type { Fault, FaultHub } from './fault-hub';
import {
  FileLoadError,
  HubAccessError,
  HubConnectionError,
  HubError,
  HubNotFoundError,
  HubResponseError,
  HubTimeoutError,
  ModelConfigError,
} from '../errors';

const MODEL = join(process.cwd(), 'public/models/peftlab-s');
const ADAPTER = join(process.cwd(), 'src/lib/peft/fixtures/peft-0.21-open/lora');
const model = {
  'config.json': readFileSync(join(MODEL, 'config.json')),
  'model.safetensors': readFileSync(join(MODEL, 'model.safetensors')),
  'tokenizer.json': readFileSync(join(MODEL, 'tokenizer.json')),
};
const adapter = {
  'adapter_config.json': readFileSync(join(ADAPTER, 'adapter_config.json')),
  'adapter_model.safetensors': readFileSync(join(ADAPTER, 'adapter_model.safetensors')),
};
const WEIGHTS = model['model.safetensors'].byteLength;

let hub: FaultHub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

/** A hub serving `m/peftlab-s` and `a/lora`, with `fault` on one file of either. */
async function serve(file: string, fault: Fault): Promise<FaultHub> {
  hub = await startFaultHub({ 'm/peftlab-s': model, 'a/lora': adapter }, (_repo, f) =>
    f === file ? fault : undefined,
  );
  return hub;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, 'the download should have failed').toBeInstanceOf(Error);
  return e as Error;
}

function getModel(h: FaultHub, opts: HubOptions = {}): Promise<Error> {
  return failure(downloadHubModel('m/peftlab-s', { endpoint: h.endpoint, ...opts }));
}

describe('Hub faults are named, say what to do, and return nothing', () => {
  it('the fault server serves the whole model when nothing is injected', async () => {
    const h = await serve('', { kind: 'ok' });
    const files = await downloadHubModel('m/peftlab-s', { endpoint: h.endpoint });
    expect(Buffer.compare(Buffer.from(files.weights[0]!), model['model.safetensors'])).toBe(0);
    const a = await downloadHubAdapter('a/lora', { endpoint: h.endpoint });
    expect(a.weights.byteLength).toBe(adapter['adapter_model.safetensors'].byteLength);
  });

  it('401 from a gated repo: accept the licence at its page, then give a token (the caller says how)', async () => {
    const h = await serve('config.json', {
      kind: 'status',
      status: 401,
      headers: { 'x-error-code': 'GatedRepo' },
    });
    const e = await getModel(h, { tokenAdvice: 'set HF_TOKEN' });
    expect(e).toBeInstanceOf(HubAccessError);
    expect(e).toBeInstanceOf(FileLoadError);
    expect(e.message).toBe(
      `m/peftlab-s/config.json: the Hub refused access (HTTP 401); the repo is gated: accept its licence at ${h.endpoint}/m/peftlab-s while logged in, then set HF_TOKEN`,
    );
  });

  it('403 with a token: the account has not been let in yet; the token is sent as a Bearer header', async () => {
    hub = await startFaultHub({ 'm/peftlab-s': model }, () => ({
      kind: 'status',
      status: 403,
      headers: { 'x-error-code': 'GatedRepo' },
    }));
    const e = await getModel(hub, { token: 'hf_test' });
    expect(hub.requests).toEqual([
      { path: '/m/peftlab-s/resolve/main/config.json', authorization: 'Bearer hf_test' },
    ]);
    expect(e).toBeInstanceOf(HubAccessError);
    expect(e.message).toMatch(
      /HTTP 403\); the repo is gated: accept its licence at .*\/m\/peftlab-s while logged in, then try again with the same token/,
    );
  });

  it('401 without a reason: private or gated, and a rejected token says so', async () => {
    const h = await serve('config.json', { kind: 'status', status: 401 });
    const e = await getModel(h);
    expect(e).toBeInstanceOf(HubAccessError);
    expect(e.message).toMatch(
      /may be private or gated: if you can open .* accept its licence there, then give a Hub token/,
    );
    const t = await getModel(h, { token: 'hf_bad' });
    expect(t.message).toMatch(
      /the Hub refused the token \(HTTP 401\): check that it is valid and can read m\/peftlab-s/,
    );
  });

  it('404, and the Hub\'s 401 "RepoNotFound", are HubNotFoundError', async () => {
    let h = await serve('config.json', { kind: 'status', status: 404 });
    let e = await getModel(h);
    expect(e).toBeInstanceOf(HubNotFoundError);
    expect(e.message).toMatch(
      /^m\/peftlab-s\/config.json was not found on the Hub \(HTTP 404\): check the repo id and the revision; a private repo/,
    );
    await h.close();
    h = await serve('config.json', {
      kind: 'status',
      status: 401,
      headers: { 'x-error-code': 'RepoNotFound' },
    });
    e = await getModel(h);
    expect(e).toBeInstanceOf(HubNotFoundError);
    // A shard the index names but the repo lacks is not optional: not found, not "no weights".
    await h.close();
    h = await serve('adapter_model.safetensors', { kind: 'status', status: 500 });
    e = await failure(downloadHubAdapter('a/lora', { endpoint: h.endpoint }));
    expect(e).toBeInstanceOf(HubResponseError);
    expect(e.message).toBe(
      'a/lora/adapter_model.safetensors: the Hub answered HTTP 500 (a server fault); try again later',
    );
  });

  it('a web page where JSON or weights were asked for, typed text/html or not', async () => {
    for (const [file, kind] of [
      ['config.json', 'html'],
      ['config.json', 'html-untyped'],
      ['tokenizer.json', 'html-untyped'],
      ['model.safetensors', 'html'],
    ] as const) {
      const h = await serve(file, { kind });
      const e = await getModel(h);
      expect(e, `${file} ${kind}`).toBeInstanceOf(HubResponseError);
      expect(e.message).toBe(
        `m/peftlab-s/${file}: ${h.endpoint} sent a web page (HTML) instead of the file: it is not a Hub, or a login page or proxy stands in the way; check the address and your network`,
      );
      await h.close();
    }
    const h = await serve('adapter_config.json', { kind: 'html-untyped' });
    expect(await failure(downloadHubAdapter('a/lora', { endpoint: h.endpoint }))).toBeInstanceOf(
      HubResponseError,
    );
  });

  it('a truncated body: cut under a true Content-Length, or cut with none announced', async () => {
    let h = await serve('model.safetensors', { kind: 'cut', keep: 300_000 });
    let e = await getModel(h);
    expect(e).toBeInstanceOf(HubConnectionError);
    expect(e.message).toMatch(
      /^m\/peftlab-s\/model.safetensors: the connection broke after .* of 2\.\d MiB: try again; nothing of it was kept$/,
    );
    await h.close();
    // Without a length, HTTP sees a whole file: the safetensors header says how long it must be.
    h = await serve('model.safetensors', { kind: 'cut-unannounced', keep: 300_000 });
    e = await getModel(h);
    expect(e).toBeInstanceOf(HubResponseError);
    expect(e.message).toMatch(
      /^m\/peftlab-s\/model.safetensors arrived cut short: 300000 bytes of 2\.\d MiB \(the length its header gives\): try again; nothing of it was kept$/,
    );
    await h.close();
    h = await serve('adapter_model.safetensors', { kind: 'cut-unannounced', keep: 1000 });
    e = await failure(downloadHubAdapter('a/lora', { endpoint: h.endpoint }));
    expect(e).toBeInstanceOf(HubResponseError);
    expect(e.message).toMatch(/arrived cut short: 1000 bytes of \d+ bytes \(the length its header gives\)/);
  });

  it('a wrong Content-Length: larger than the file breaks the connection, smaller cuts the file', async () => {
    let h = await serve('model.safetensors', { kind: 'wrong-length', length: WEIGHTS + 4096 });
    let e = await getModel(h);
    expect(e).toBeInstanceOf(HubConnectionError);
    expect(e.message).toMatch(/the connection broke after 2\.\d MiB of 2\.\d MiB/);
    await h.close();
    h = await serve('model.safetensors', { kind: 'wrong-length', length: WEIGHTS - 4096 });
    e = await getModel(h);
    expect(e).toBeInstanceOf(HubResponseError);
    expect(e.message).toMatch(/arrived cut short: 2\.\d MiB of 2\.\d MiB \(the length its header gives\)/);
  });

  it('a server that stalls, before answering or mid-file, times out (default 30 s)', async () => {
    expect(DEFAULT_HUB_TIMEOUT_MS).toBe(30_000);
    let h = await serve('config.json', { kind: 'stall-headers' });
    const t0 = performance.now();
    let e = await getModel(h, { timeoutMs: 300 });
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(e).toBeInstanceOf(HubTimeoutError);
    expect(e.message).toBe(
      'm/peftlab-s/config.json: the server sent nothing for 0.3 s: it is stalled or very slow; try again later, or use a mirror; nothing of it was kept',
    );
    await h.close();
    h = await serve('model.safetensors', { kind: 'stall-body', keep: 100_000 });
    e = await getModel(h, { timeoutMs: 300 });
    expect(e).toBeInstanceOf(HubTimeoutError);
    expect(e.message).toMatch(
      /model.safetensors: the server sent nothing for 0\.3 s after 100000 bytes: it is stalled/,
    );
  });

  it('a slow server that keeps sending is not cut: the timeout is between pieces, not for the file', async () => {
    // config.json in 40 pieces, 50 ms apart (2 s in all), under a 300 ms timeout; the rest at once.
    const server = createServer((req, res) => {
      const file = /\/resolve\/main\/(.+)$/.exec(req.url ?? '')?.[1] ?? '';
      const body = (model as Record<string, Buffer>)[file];
      if (!body) return void res.writeHead(404, { connection: 'close' }).end();
      res.writeHead(200, { 'content-length': body.byteLength, connection: 'close' });
      if (file !== 'config.json') return void res.end(body);
      const step = Math.ceil(body.byteLength / 40);
      let at = 0;
      const tick = setInterval(() => {
        res.write(body.subarray(at, at + step));
        at += step;
        if (at >= body.byteLength) {
          clearInterval(tick);
          res.end();
        }
      }, 50);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const t0 = performance.now();
      const files = await downloadHubModel('m/peftlab-s', {
        endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        timeoutMs: 300,
      });
      expect(performance.now() - t0).toBeGreaterThan(1500);
      expect(Buffer.compare(Buffer.from(files.config), model['config.json'])).toBe(0);
    } finally {
      server.close();
    }
  });

  it('the server gone mid-download, and then unreachable', async () => {
    const h = await serve('model.safetensors', { kind: 'gone', keep: 500_000 });
    const e = await getModel(h);
    expect(e).toBeInstanceOf(HubConnectionError);
    expect(e.message).toMatch(/^m\/peftlab-s\/model.safetensors: the connection broke after /);
    const again = await getModel(h);
    expect(again).toBeInstanceOf(HubConnectionError);
    expect(again.message).toBe(
      `could not reach ${h.endpoint} for m/peftlab-s/config.json: check your network connection (models downloaded before still work offline)`,
    );
  });

  it("a config.json that arrives whole but is not JSON is the repo's fault, not the download's", async () => {
    hub = await startFaultHub({
      'm/peftlab-s': { ...model, 'config.json': Buffer.from('{"model_type": "gpt2",') },
    });
    const e = await getModel(hub);
    expect(e).toBeInstanceOf(ModelConfigError);
    expect(e).not.toBeInstanceOf(HubError);
  });
});
