import { describe, expect, it } from 'vitest';
import { RunGate } from './run-gate';

function gate(): { gate: RunGate; log: string[] } {
  const log: string[] = [];
  return { gate: new RunGate({ paused: () => log.push('paused'), resumed: () => log.push('resumed') }), log };
}

/** A loop of `steps` steps through the gate; returns the steps it took. */
async function loop(g: RunGate, steps: number, onStep: (i: number) => void = () => {}): Promise<number> {
  let i = 0;
  while (i < steps && !g.stopped) {
    await g.checkpoint();
    if (g.stopped) break;
    onStep(++i);
  }
  return i;
}

describe('RunGate', () => {
  it('is running only inside run(), and forgets a pause or stop from before it', async () => {
    const { gate: g } = gate();
    g.pause(); // no run: ignored
    expect(g.paused).toBe(false);
    g.stop();
    expect(g.stopped).toBe(true);
    const seen: boolean[] = [];
    const n = await g.run(async () => {
      seen.push(g.running, g.stopped);
      return loop(g, 3);
    });
    expect(n).toBe(3);
    expect(seen).toEqual([true, false]);
    expect(g.running).toBe(false);
  });

  it('blocks at the checkpoint while paused and goes on when resumed', async () => {
    const { gate: g, log } = gate();
    let resumeAt = 0;
    const n = await g.run(() =>
      loop(g, 5, (i) => {
        if (i === 2) {
          g.pause();
          setTimeout(() => {
            resumeAt = i;
            g.resume();
          }, 20);
        }
      }),
    );
    expect(n).toBe(5);
    expect(resumeAt).toBe(2); // no step ran while paused
    expect(log).toEqual(['paused', 'resumed']);
    expect(g.paused).toBe(false);
  });

  it('stops a paused run without announcing a resume, and stays stopped after the run', async () => {
    const { gate: g, log } = gate();
    const n = await g.run(() =>
      loop(g, 10, (i) => {
        if (i === 3) {
          g.pause();
          setTimeout(() => g.stop(), 10);
        }
      }),
    );
    expect(n).toBe(3);
    expect(log).toEqual(['paused']);
    expect(g.stopped).toBe(true);
    expect(g.running).toBe(false);
  });

  it('counts a stop that arrives before the first checkpoint', async () => {
    const { gate: g } = gate();
    const n = await g.run(async () => {
      g.stop(); // e.g. while the data loads
      return loop(g, 5);
    });
    expect(n).toBe(0);
  });

  it('ends the run (not running, not paused) when the body throws', async () => {
    const { gate: g } = gate();
    await expect(
      g.run(async () => {
        g.pause();
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(g.running).toBe(false);
    expect(g.paused).toBe(false);
  });
});
