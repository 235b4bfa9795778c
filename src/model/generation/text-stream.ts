/**
 * Turns generated tokens into text pieces that are always whole characters, and finds stop
 * strings. A character split across tokens stays in the UTF-8 decoder until its last byte
 * arrives; text that might be the start of a stop string is held back until it is not.
 */
export class TextStream {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private stopped = false;

  constructor(
    private readonly tokenBytes: (id: number) => Uint8Array,
    private readonly stop: readonly string[],
  ) {}

  /** True once a stop string has appeared; nothing more will be emitted. */
  get hasStopped(): boolean {
    return this.stopped;
  }

  /** Adds one token; returns the text that is now safe to emit (possibly empty). */
  push(token: number): string {
    if (this.stopped) return '';
    this.pending += this.decoder.decode(this.tokenBytes(token), { stream: true });
    return this.release(false);
  }

  /** Ends the stream: whatever is held back goes out, minus a trailing incomplete character. */
  finish(): string {
    if (this.stopped) return '';
    // An incomplete sequence at the very end would decode to U+FFFD; whole characters only.
    this.decoder.decode();
    return this.release(true);
  }

  private release(final: boolean): string {
    let cut = -1;
    for (const stop of this.stop) {
      const at = this.pending.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      this.stopped = true;
      const text = this.pending.slice(0, cut);
      this.pending = '';
      return text;
    }
    const hold = final ? 0 : this.stopPrefixLength();
    const text = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return text;
  }

  /** Length of the longest tail of the pending text that begins some stop string. */
  private stopPrefixLength(): number {
    let longest = 0;
    for (const stop of this.stop) {
      for (let length = Math.min(stop.length - 1, this.pending.length); length > longest; length--) {
        if (this.pending.endsWith(stop.slice(0, length))) {
          longest = length;
          break;
        }
      }
    }
    return longest;
  }
}
