/**
 * Turns token ids arriving one by one into text pieces that are safe to show: a byte-level BPE
 * splits a multi-byte character across tokens, and the partial bytes decode to U+FFFD until the
 * last one arrives, so a piece is released only once the decoded text is whole and extends what
 * was already released. The CLI's `generate` and the Lab's streaming worker share it.
 */
export class TextStream {
  private readonly ids: number[] = [];
  private shown = '';

  constructor(private readonly decode: (ids: number[]) => string) {}

  /** Adds one token; returns the new text it completes ('' while a character is still split). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    if (text.endsWith('\uFFFD') || !text.startsWith(this.shown)) return '';
    const piece = text.slice(this.shown.length);
    this.shown = text;
    return piece;
  }

  /** What is left unreleased at the end (a character that never completed decodes as U+FFFD). */
  flush(): string {
    const text = this.decode(this.ids);
    if (!text.startsWith(this.shown)) return '';
    const piece = text.slice(this.shown.length);
    this.shown = text;
    return piece;
  }

  /** All the text released so far. */
  get text(): string {
    return this.shown;
  }
}
