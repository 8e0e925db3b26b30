/**
 * The tab broker's logic (the SharedWorker in src/workers/swarm-broker.worker.ts is its thin host):
 * other tabs of the app offer block workers, a tab's swarm takes one. The broker only passes
 * control ports between tabs; it computes nothing and never sees a frame of the swarm protocol,
 * which then flows directly between the taker's engine and the offering tab's block worker.
 *
 * Why a SharedWorker and not a BroadcastChannel: a BroadcastChannel cannot carry a MessagePort, so
 * every frame of every connection would be broadcast, copied to every tab, and addressed by hand;
 * through the broker the tabs end up with a MessageChannel of their own whose frames are transferred,
 * not copied, exactly as with a block worker in the same tab. The same engine code serves both.
 *
 * Every message from a tab is checked (its shape, the offer's fields, that a port came with an
 * offer); a malformed one is answered with nothing and changes nothing.
 */
import type { FromBroker, TabOffer, ToBroker } from '../protocol/swarm-protocol';

/** What the broker needs of a tab's connection (a MessagePort in the browser and in tests). */
export interface BrokerPort {
  postMessage(message: FromBroker, transfer?: Transferable[]): void;
}

const ID = /^[A-Za-z0-9:_-]{1,80}$/;

/** The offer in a message, if it is well formed: ids of safe characters, a non-empty span. */
export function checkOffer(o: unknown): TabOffer | null {
  if (typeof o !== 'object' || o === null) return null;
  const { offerId, start, end, lock } = o as Record<string, unknown>;
  if (typeof offerId !== 'string' || !ID.test(offerId)) return null;
  if (typeof lock !== 'string' || !ID.test(lock)) return null;
  const whole = (v: unknown): v is number =>
    Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 4096;
  if (!whole(start) || !whole(end) || end <= start) return null;
  return { offerId, start, end, lock };
}

/** A broker message, checked; null for anything else. */
export function checkBrokerMessage(m: unknown): ToBroker | null {
  if (typeof m !== 'object' || m === null) return null;
  const r = m as Record<string, unknown>;
  if ('offer' in r) {
    const offer = checkOffer(r.offer);
    return offer && { offer };
  }
  if (typeof r.take === 'string' && ID.test(r.take)) return { take: r.take };
  if (typeof r.withdraw === 'string' && ID.test(r.withdraw)) return { withdraw: r.withdraw };
  return null;
}

export class TabBroker {
  private readonly tabs = new Set<BrokerPort>();
  private readonly offers = new Map<string, { offer: TabOffer; control: MessagePort; from: BrokerPort }>();

  /**
   * @param watchLock resolves once the holder of a lock has ended (navigator.locks in the browser):
   *   an offer whose tab closed before anyone took it is forgotten.
   */
  constructor(private readonly watchLock: (lock: string) => Promise<void>) {}

  private list(): TabOffer[] {
    return [...this.offers.values()].map((o) => ({ ...o.offer }));
  }

  private broadcast(): void {
    const offers = this.list();
    for (const t of this.tabs) t.postMessage({ offers });
  }

  /** A tab connected: it hears the offers at once and at each change. */
  join(tab: BrokerPort): void {
    this.tabs.add(tab);
    tab.postMessage({ offers: this.list() });
  }

  leave(tab: BrokerPort): void {
    this.tabs.delete(tab);
  }

  /** One message from a tab, with the ports that came with it. */
  receive(tab: BrokerPort, data: unknown, ports: readonly MessagePort[]): void {
    const m = checkBrokerMessage(data);
    if (!m) return;
    if ('offer' in m) {
      const control = ports[0];
      if (!control || this.offers.has(m.offer.offerId)) return;
      this.offers.set(m.offer.offerId, { offer: m.offer, control, from: tab });
      const id = m.offer.offerId;
      void this.watchLock(m.offer.lock).then(() => {
        if (this.offers.delete(id)) this.broadcast();
      });
      this.broadcast();
    } else if ('take' in m) {
      const o = this.offers.get(m.take);
      if (!o) return tab.postMessage({ gone: m.take });
      this.offers.delete(m.take);
      tab.postMessage({ taken: o.offer }, [o.control]);
      o.from.postMessage({ joined: m.take });
      this.broadcast();
    } else {
      const o = this.offers.get(m.withdraw);
      // Only the tab that made an offer may withdraw it.
      if (o?.from === tab && this.offers.delete(m.withdraw)) this.broadcast();
    }
  }
}
