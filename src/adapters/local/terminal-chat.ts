import { writeFile } from 'node:fs/promises';
import { basename, join, parse } from 'node:path';
import { createInterface } from 'node:readline';
import { errorReply } from '../../core/error-reply.js';
import { isReplyFile, type ReplyFile } from '../../core/reply.js';
import { type Logger, silentLogger } from '../../log.js';
import type { ChatEngine } from './http-server.js';

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

export async function runTerminalChat(engine: ChatEngine, input: NodeJS.ReadableStream, output: NodeJS.WritableStream, options: TerminalChatOptions = {}): Promise<void> {
  const userId = options.userId ?? 'terminal';
  const saveDir = options.saveDir ?? process.cwd();
  const logger = options.logger ?? silentLogger;
  const interactive = (input as { isTTY?: boolean }).isTTY === true;
  const lines = createInterface({ input, terminal: false });
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
