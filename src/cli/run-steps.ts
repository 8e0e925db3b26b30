/** The CLI's training loop, shared by language modelling and classification: steps with a progress line. */
import type { Trainer } from '../lib/train/trainer';
import { Progress } from './progress';
import { outOfMemoryAdvice } from '../lib/backend/out-of-memory';

export interface StepsRun {
  /** Loss of the last step. */
  last: number;
  tokens: number;
  seconds: number;
}

/** Runs the trainer to `steps`, then disposes it (also on failure). */
export async function runSteps(trainer: Trainer, steps: number): Promise<StepsRun> {
  const progress = new Progress(steps);
  const t0 = performance.now();
  let last = NaN;
  let tokens = 0;
  try {
    while (trainer.step < steps) {
      const st = await trainer.trainStep();
      if (st.skipped) {
        // A NonFiniteLossError after repeated skips ends the run with its one line, as any error.
        progress.note(
          `step ${st.step + 1} skipped: loss ${st.loss}, gradient norm ${st.gradNorm}; learning rate halved to ${st.lr.toExponential(2)}`,
        );
        continue;
      }
      last = st.loss;
      tokens += st.tokens;
      progress.update(st.step, st.loss, st.tokens);
      await new Promise((r) => setImmediate(r)); // let signals and stream writes through
    }
  } catch (e) {
    throw outOfMemoryAdvice(e, 'training', trainer.opts);
  } finally {
    progress.done();
    trainer.dispose();
  }
  return { last, tokens, seconds: (performance.now() - t0) / 1000 };
}
