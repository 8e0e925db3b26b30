/**
 * Learning-rate schedule: linear warmup then cosine decay to zero, as HF's
 * get_cosine_schedule_with_warmup (transformers/optimization.py).
 */
export function cosineWithWarmup(
  step: number,
  peak: number,
  warmupSteps: number,
  totalSteps: number,
): number {
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return peak * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress)));
}
