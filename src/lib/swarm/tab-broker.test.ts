import { describe, expect, it } from 'vitest';
import type { FromBroker } from '../protocol/swarm-protocol';
import { checkBrokerMessage, TabBroker } from './tab-broker';

/** A tab as the broker sees it: what it was sent, with the ports that came along. */
function tab(): {
  port: { postMessage(m: FromBroker, t?: Transferable[]): void };
  got: [FromBroker, number][];
} {
  const got: [FromBroker, number][] = [];
  return { got, port: { postMessage: (m, t = []) => void got.push([m, t.length]) } };
}

describe('TabBroker', () => {
  it('passes an offered control port to the one tab that takes it, and tells the offering tab', () => {
    const kills = new Map<string, () => void>();
    const broker = new TabBroker((lock) => new Promise((resolve) => kills.set(lock, resolve)));
    const a = tab();
    const b = tab();
    const c = tab();
    broker.join(a.port);
    broker.join(b.port);
    broker.join(c.port);
    const { port1, port2 } = new MessageChannel();
    const offer = { offerId: 'o-1', start: 0, end: 3, lock: 'peft-lab-peer:1' };
    broker.receive(b.port, { offer }, [port1]);
    expect(a.got.at(-1)).toEqual([{ offers: [offer] }, 0]);
    broker.receive(a.port, { take: 'o-1' }, []);
    expect(a.got.at(-2)).toEqual([{ taken: offer }, 1]);
    expect(b.got.some(([m]) => 'joined' in m && m.joined === 'o-1')).toBe(true);
    expect(c.got.at(-1)).toEqual([{ offers: [] }, 0]);
    // Taken once: a second taker hears it is gone.
    broker.receive(c.port, { take: 'o-1' }, []);
    expect(c.got.at(-1)).toEqual([{ gone: 'o-1' }, 0]);
    port2.close();
  });

  it('forgets an offer whose tab closed, and lets only its own tab withdraw one', async () => {
    const kills = new Map<string, () => void>();
    const broker = new TabBroker((lock) => new Promise((resolve) => kills.set(lock, resolve)));
    const a = tab();
    const b = tab();
    broker.join(a.port);
    broker.join(b.port);
    const ports = [new MessageChannel(), new MessageChannel()];
    broker.receive(b.port, { offer: { offerId: 'o-1', start: 0, end: 2, lock: 'l1' } }, [ports[0]!.port1]);
    broker.receive(b.port, { offer: { offerId: 'o-2', start: 1, end: 3, lock: 'l2' } }, [ports[1]!.port1]);
    broker.receive(a.port, { withdraw: 'o-2' }, []);
    expect(a.got.at(-1)![0]).toMatchObject({ offers: [{ offerId: 'o-1' }, { offerId: 'o-2' }] });
    kills.get('l1')!();
    await Promise.resolve();
    expect(a.got.at(-1)![0]).toEqual({ offers: [{ offerId: 'o-2', start: 1, end: 3, lock: 'l2' }] });
    broker.receive(b.port, { withdraw: 'o-2' }, []);
    expect(a.got.at(-1)![0]).toEqual({ offers: [] });
    for (const p of ports) p.port2.close();
  });

  it('ignores malformed messages and an offer without its port', () => {
    const broker = new TabBroker(() => new Promise(() => {}));
    const a = tab();
    broker.join(a.port);
    const before = a.got.length;
    for (const bad of [
      null,
      'offer',
      { offer: { offerId: 'o 1', start: 0, end: 1, lock: 'l' } },
      { offer: { offerId: 'o1', start: 2, end: 2, lock: 'l' } },
      { offer: { offerId: 'o1', start: 0.5, end: 2, lock: 'l' } },
      { offer: { offerId: 'o1', start: 0, end: 2 } },
      { take: 42 },
      { withdraw: '<script>' },
    ])
      expect(checkBrokerMessage(bad)).toBeNull();
    broker.receive(a.port, { offer: { offerId: 'o1', start: 0, end: 2, lock: 'l' } }, []);
    broker.receive(a.port, { nonsense: true }, []);
    expect(a.got.length).toBe(before);
  });
});
