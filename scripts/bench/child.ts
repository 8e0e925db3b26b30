/**
 * A long-lived child process driven over stdin/stdout JSON lines, one request at a time (each reply
 * answers the request before it). The bench runs every engine in one: HF PEFT in Python
 * (peft_worker.py), ours and nanogpt each in a Node process of its own (engine-worker.ts), so no
 * engine's imports, kernel registrations, heap or garbage sit in another's process.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export type Reply = { ok: true; [k: string]: unknown } | { ok: false; error: string; trace?: string };

export class JsonLineChild {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: ((r: Reply) => void)[] = [];
  private stderrTail = '';
  private exited: string | null = null;

  constructor(command: string, args: string[], env: NodeJS.ProcessEnv) {
    this.proc = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      // A child may print other lines (a library's notice); replies are the JSON objects.
      if (!line.startsWith('{')) return;
      const next = this.waiting.shift();
      if (!next) return;
      try {
        next(JSON.parse(line) as Reply);
      } catch {
        next({ ok: false, error: `unreadable reply from ${command}: ${line.slice(0, 200)}` });
      }
    });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString()).slice(-2000);
    });
    const fail = (why: string): void => {
      this.exited = why;
      for (const w of this.waiting.splice(0)) w({ ok: false, error: why });
    };
    this.proc.on('error', (e) => fail(`could not start ${command}: ${e.message}`));
    this.proc.on('exit', (code) =>
      fail(`${command} exited (code ${code}): ${this.stderrTail.trim().split('\n').slice(-3).join(' | ')}`),
    );
  }

  request(obj: object): Promise<Reply> {
    if (this.exited) return Promise.resolve({ ok: false, error: this.exited });
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.proc.stdin.write(JSON.stringify(obj) + '\n');
    });
  }

  async close(): Promise<void> {
    if (!this.exited) await this.request({ cmd: 'quit' });
    this.proc.stdin.end();
  }
}
