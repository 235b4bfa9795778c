import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LocalChatServer } from '../../src/adapters/local/http-server.js';
import { startAdapters, stopAdapters } from '../../src/cli/serve-commands.js';
import type { Adapter, ChatEngine } from '../../src/core/conversation/adapter.js';
import { silentLogger } from '../../src/log.js';

const echo: ChatEngine = {
  async *handle(message) {
    yield `you said ${message.text}`;
  },
};

async function say(url: string, text: string): Promise<string> {
  const response = await fetch(`${url}/api/messages`, { method: 'POST', body: JSON.stringify({ userId: 'u', text }) });
  return response.text();
}

describe('tunebot start: adapters through their lifecycle', () => {
  let blocker: Server;
  let takenPort: number;

  before(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    takenPort = (blocker.address() as { port: number }).port;
  });

  after(async () => {
    await new Promise((resolve) => blocker.close(resolve));
  });

  it('starts each adapter in order, and stops them all', async () => {
    const adapters = [new LocalChatServer(echo, { port: 0, logger: silentLogger }), new LocalChatServer(echo, { port: 0, logger: silentLogger })];
    const started = await startAdapters(adapters, silentLogger);
    assert.deepEqual(started, adapters);
    const urls = adapters.map((adapter) => adapter.url);
    for (const url of urls) assert.match(await say(url, 'hi'), /"text":"you said hi"/u);
    await stopAdapters(started);
    for (const url of urls) await assert.rejects(say(url, 'hi'), /fetch failed/u, 'nothing listens after stop');
  });

  it('stops the adapters already started when one cannot start, and passes its error on', async () => {
    const first = new LocalChatServer(echo, { port: 0, logger: silentLogger });
    const second = new LocalChatServer(echo, { port: takenPort, logger: silentLogger });
    let firstUrl = '';
    // The first adapter as it is, telling where it listened once started.
    const watched: Adapter = {
      name: first.name,
      async start() {
        await first.start();
        firstUrl = first.url;
      },
      stop: () => first.stop(),
    };
    await assert.rejects(startAdapters([watched, second], silentLogger), { code: 'EADDRINUSE' });
    assert.ok(firstUrl, 'the first adapter had started');
    await assert.rejects(say(firstUrl, 'hi'), /fetch failed/u, 'and was stopped');
  });
});
