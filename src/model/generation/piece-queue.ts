/**
 * The text pieces of one generation between whoever produces them (a worker's messages, an
 * HTTP stream) and the one reader that drains them: pieces in order, then the end or the error.
 */
export class PieceQueue {
  private readonly pieces: string[] = [];
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  private done = false;

  get ended(): boolean {
    return this.done;
  }

  push(piece: string): void {
    this.pieces.push(piece);
    this.wake?.();
  }

  /** Ends the queue with `error`, which the reader gets after the pieces already pushed. */
  fail(error: Error): void {
    if (this.done) return;
    this.error = error;
    this.end();
  }

  end(): void {
    this.done = true;
    this.wake?.();
  }

  async *drain(): AsyncGenerator<string> {
    for (;;) {
      if (this.pieces.length > 0) {
        yield this.pieces.shift() as string;
        continue;
      }
      if (this.error) throw this.error;
      if (this.done) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }
}
