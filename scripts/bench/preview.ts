/**
 * The production build served by `vite preview` for the browser benches (bench:browser,
 * bench:offload:browser, bench:lessons:browser): started on a port of their own, waited for, and
 * stopped with its whole process group (npx runs vite as a child, which a plain kill would leave).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Preview {
  base: string;
  stop(): void;
}

export async function startPreview(port: number): Promise<Preview> {
  if (!existsSync('dist/index.html')) throw new Error('no build in dist/: run `npx vite build` first');
  const server = spawn('npx', ['vite', 'preview', '--port', String(port), '--strictPort'], {
    stdio: 'ignore',
    detached: true,
  });
  const base = `http://localhost:${port}`;
  const stop = (): void => {
    try {
      process.kill(-server.pid!);
    } catch {
      // Already gone.
    }
  };
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(base)).ok) break;
    } catch {
      if (i > 100) {
        stop();
        throw new Error(`vite preview did not start on port ${port}`);
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  return { base, stop };
}
