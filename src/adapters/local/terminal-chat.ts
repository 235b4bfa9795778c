import { createInterface } from 'node:readline';
import type { ChatEngine } from './http-server.js';

/**
 * `tunebot chat`: one message per line, from a keyboard or a pipe; replies stream to stdout.
 * Lines are answered in order, each after the previous reply has finished.
 */
export async function runTerminalChat(engine: ChatEngine, input: NodeJS.ReadableStream, output: NodeJS.WritableStream, userId = 'terminal'): Promise<void> {
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
    for await (const piece of engine.handle(message)) output.write(piece);
    output.write(interactive ? '\n> ' : '\n');
  }
}
