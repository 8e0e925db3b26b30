/** Test helpers: byte streams cut into chunks of a chosen size, which record how far they were read. */

export interface ChunkedStream {
  stream: ReadableStream<Uint8Array>;
  /** Chunks handed out so far. */
  pulled(): number;
  /** Whether the reader cancelled the stream. */
  cancelled(): boolean;
}

/** `bytes` (or text, as UTF-8) as a stream of `chunkSize`-byte chunks (sizes cycle when given a list). */
export function chunkedStream(
  input: Uint8Array | string,
  chunkSize: number | number[] = 65536,
): ChunkedStream {
  const bytes = typeof input === 'string' ? new TextEncoder().encode(input) : input;
  const sizes = Array.isArray(chunkSize) ? chunkSize : [chunkSize];
  let offset = 0;
  let pulls = 0;
  let wasCancelled = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (offset >= bytes.length) {
          controller.close();
          return;
        }
        const size = sizes[pulls % sizes.length]!;
        controller.enqueue(bytes.slice(offset, offset + size));
        offset += size;
        pulls++;
      },
      cancel() {
        wasCancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, pulled: () => pulls, cancelled: () => wasCancelled };
}

/** Strings as UTF-8 and number arrays as raw bytes, concatenated (raw bytes make invalid UTF-8). */
export function bytesOf(...parts: (string | number[])[]): Uint8Array {
  const chunks = parts.map((p) => (typeof p === 'string' ? new TextEncoder().encode(p) : Uint8Array.from(p)));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
