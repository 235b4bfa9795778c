import { writeFile } from 'node:fs/promises';
import { basename, join, parse } from 'node:path';
import { createInterface, type Interface as ReadlineInterface } from 'node:readline';
import type { Adapter, ChatEngine } from '../../core/conversation/adapter.js';
import { errorReply } from '../../core/conversation/error-reply.js';
import { isReplyFile, type ReplyFile } from '../../core/conversation/reply.js';
import { type Logger, silentLogger } from '../../log.js';

/**
 * `tunebot chat`: one message per line, from a keyboard or a pipe; replies stream to stdout.
 * Lines are answered in order, each after the previous reply has finished. A file a reply
 * carries is written into `saveDir` (the working folder), never over an existing file, and
 * its path printed on a line of its own.
 */
export interface TerminalChatOptions {
  readonly userId?: string;
  readonly saveDir?: string;
  /** Where a message the engine failed on is logged. */
  readonly logger?: Logger;
}

export class TerminalChat implements Adapter {
  readonly name = 'terminal chat';
  private lines: ReadlineInterface | null = null;
  private reading: Promise<void> | null = null;

  constructor(
    private readonly engine: ChatEngine,
    private readonly input: NodeJS.ReadableStream,
    private readonly output: NodeJS.WritableStream,
    private readonly options: TerminalChatOptions = {},
  ) {}

  /** Starts reading lines (greeting a person at a terminal). */
  async start(): Promise<void> {
    this.lines = createInterface({ input: this.input, terminal: false });
    this.reading = this.answerLines(this.lines);
  }

  /** Resolves once the input has ended (or stop() was called) and the last reply is written. */
  finished(): Promise<void> {
    if (!this.reading) throw new Error('the terminal chat is not started');
    return this.reading;
  }

  /** Reads no more lines, and resolves once the reply under way is written. */
  async stop(): Promise<void> {
    this.lines?.close();
    await this.reading;
  }

  private async answerLines(lines: ReadlineInterface): Promise<void> {
    const { engine, output } = this;
    const userId = this.options.userId ?? 'terminal';
    const saveDir = this.options.saveDir ?? process.cwd();
    const logger = this.options.logger ?? silentLogger;
    const interactive = (this.input as { isTTY?: boolean }).isTTY === true;
    if (interactive) output.write('tunebot chat: ask a question, /help for commands, Ctrl-D to quit\n> ');
    for await (const line of lines) {
      if (!line.trim()) {
        if (interactive) output.write('> ');
        continue;
      }
      const message = {
        platform: 'local',
        scope: { workspace: 'local', channel: 'terminal' },
        user: { id: userId, displayName: userId },
        text: line,
        attachments: [],
        platformAdmin: true,
      };
      let started = false;
      let afterFile = false;
      try {
        for await (const part of engine.handle(message)) {
          if (isReplyFile(part)) output.write(`${started ? '\n' : ''}${await saveReplyFile(saveDir, part)}`);
          else output.write(`${afterFile ? '\n' : ''}${part}`);
          afterFile = isReplyFile(part);
          started = true;
        }
      } catch (error) {
        // One failed message does not end the chat; the next line is answered as usual.
        logger.error({ err: error, user: `local:${userId}` }, 'the engine failed on a terminal chat message');
        output.write(`${started ? '\n' : ''}${errorReply(error)}`);
      }
      output.write(interactive ? '\n> ' : '\n');
    }
  }
}

/** Writes `file` into `dir` as its name, or name-1.ext, name-2.ext, ... when that is taken; returns the line to print. */
async function saveReplyFile(dir: string, file: ReplyFile): Promise<string> {
  const { name: stem, ext } = parse(safeFileName(file.name));
  const caption = file.title ? `${file.title} ` : '';
  for (let n = 0; ; n++) {
    const path = join(dir, n === 0 ? `${stem}${ext}` : `${stem}-${n}${ext}`);
    try {
      await writeFile(path, file.data, { flag: 'wx' });
      return `${caption}Saved ${file.name} (${file.data.byteLength.toLocaleString('en')} bytes) as ${path}.`;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') return `${caption}Could not save ${file.name} in ${dir}: ${(error as Error).message}`;
    }
  }
}

/** The name without folders or characters a file system may refuse, so that it lands in the folder asked for. */
function safeFileName(name: string): string {
  return basename(name).replace(/[^\w.\- ]/gu, '_').replace(/^\.+/u, '') || 'file';
}
