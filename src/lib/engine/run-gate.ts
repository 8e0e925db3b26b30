/**
 * The switch both engines (the Lab's training, the Compare screen's race) run their loop through:
 * one run at a time, paused and resumed between steps, stopped at the next step. The loop calls
 * `checkpoint()` between steps; it yields to the event loop there, so a pause, resume or stop that
 * arrives as a worker message is seen while the run goes on, and blocks there while paused.
 */
export interface RunGateHooks {
  /** Each time a run blocks at a checkpoint because it is paused; `reason` when the run paused itself. */
  paused: (reason?: string) => void;
  /** When a paused run is resumed (not when it is stopped). */
  resumed: () => void;
}

export class RunGate {
  private isRunning = false;
  private isPaused = false;
  private stopRequested = false;
  private reason: string | undefined;
  private waiters: (() => void)[] = [];

  constructor(private readonly hooks: RunGateHooks) {}

  /** A run is going (the engine refuses model or adapter switches meanwhile). */
  get running(): boolean {
    return this.isRunning;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  /** A stop was asked for since the last run started (still true after that run ends). */
  get stopped(): boolean {
    return this.stopRequested;
  }

  /**
   * Runs `body` as the one run: pause and stop from before it are forgotten, and a stop that
   * arrives while `body` loads data or evaluates, before its first checkpoint, still counts.
   */
  async run<T>(body: () => Promise<T>): Promise<T> {
    this.isRunning = true;
    this.isPaused = false;
    this.stopRequested = false;
    this.reason = undefined;
    try {
      return await body();
    } finally {
      this.isRunning = false;
      this.isPaused = false;
    }
  }

  /** Gives queued messages a turn; blocks here while paused (until resumed or stopped). */
  async checkpoint(): Promise<void> {
    await new Promise((r) => setTimeout(r, 0));
    while (this.isPaused && !this.stopRequested) {
      this.hooks.paused(this.reason);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /**
   * Pauses the current run at its next checkpoint; nothing when no run is going. `reason` is set
   * when the run pauses itself (a fault a person must look at) and is shown while it waits.
   */
  pause(reason?: string): void {
    if (!this.isRunning) return;
    this.isPaused = true;
    this.reason = reason;
  }

  resume(): void {
    const wasPaused = this.isPaused;
    this.isPaused = false;
    this.reason = undefined;
    this.wake();
    if (this.isRunning && wasPaused) this.hooks.resumed();
  }

  stop(): void {
    this.stopRequested = true;
    this.isPaused = false;
    this.wake();
  }

  private wake(): void {
    this.waiters.splice(0).forEach((r) => r());
  }
}
