import { randomBytes } from 'node:crypto';
import type { ReplyFile } from '../../core/conversation/reply.js';

/**
 * The files replies carried, kept in memory for the chat page to download: each one for
 * `keepMs` after its reply, and no more than `maxBytes` in all (the oldest go first to make
 * room). Ids are random, so that one page cannot guess another's files.
 */
export interface FileShelfOptions {
  readonly keepMs: number;
  readonly maxBytes: number;
}

export const DEFAULT_FILE_SHELF: FileShelfOptions = { keepMs: 30 * 60_000, maxBytes: 256 * 1024 * 1024 };

export class FileShelf {
  /** In the order they were put, oldest first. */
  private readonly files = new Map<string, { file: ReplyFile; until: number }>();
  private bytes = 0;

  constructor(readonly options: FileShelfOptions = DEFAULT_FILE_SHELF) {}

  /** Keeps `file` and returns its id; null when it is larger than the whole shelf. */
  put(file: ReplyFile): string | null {
    if (file.data.byteLength > this.options.maxBytes) return null;
    this.dropExpired();
    for (const [id, kept] of this.files) {
      if (this.bytes + file.data.byteLength <= this.options.maxBytes) break;
      this.drop(id, kept.file);
    }
    const id = randomBytes(12).toString('base64url');
    this.files.set(id, { file, until: Date.now() + this.options.keepMs });
    this.bytes += file.data.byteLength;
    return id;
  }

  get(id: string): ReplyFile | null {
    this.dropExpired();
    return this.files.get(id)?.file ?? null;
  }

  private dropExpired(): void {
    const now = Date.now();
    for (const [id, kept] of this.files) {
      if (kept.until > now) break;
      this.drop(id, kept.file);
    }
  }

  private drop(id: string, file: ReplyFile): void {
    this.files.delete(id);
    this.bytes -= file.data.byteLength;
  }
}
