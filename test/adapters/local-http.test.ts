import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { type ClientRequest, type IncomingMessage, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { LocalChatServer } from '../../src/adapters/local/http-server.js';
import type { ChatEngine } from '../../src/core/conversation/adapter.js';
import { SAMPLE_FAQ } from '../../src/core/app.js';
import { loadConfig } from '../../src/core/config.js';
import { heldOutQuestions } from '../../src/core/fine-tuning/held-out-questions.js';
import type { LiveEvaluation } from '../../src/core/fine-tuning/model-scorer.js';
import { parseFaqDocument } from '../../src/core/faq/formats.js';
import { SOMETHING_WENT_WRONG } from '../../src/core/conversation/error-reply.js';
import { StorageError } from '../../src/core/storage/storage-error.js';
import { silentLogger } from '../../src/log.js';
import { ModelError } from '../../src/model/errors.js';
import type { GenerationStream } from '../../src/model/runtime/language-model.js';
import { createScratchApp, type ScratchApp } from '../helpers/local-app.js';
import { dataBin, exportedEntries, FILE_LINE, faqEntries, fileEngine } from '../helpers/reply-files.js';
import { started } from '../helpers/started.js';

interface ServerSentEvent {
  readonly event: string;
  readonly data: unknown;
}

/** The stream as the page reads it: events split on blank lines, each with an event name and one JSON data line. */
function parseEvents(body: string): ServerSentEvent[] {
  assert.ok(body.endsWith('\n\n'), `the stream ends mid-event: ${JSON.stringify(body.slice(-80))}`);
  return body
    .slice(0, -2)
    .split('\n\n')
    .map((block) => {
      const lines = block.split('\n');
      const named = lines.find((line) => line.startsWith('event: '));
      const data = lines.filter((line) => line.startsWith('data: '));
      assert.equal(data.length, 1, `each event has one data line: ${JSON.stringify(block)}`);
      return { event: named ? named.slice('event: '.length) : 'message', data: JSON.parse(data[0].slice('data: '.length)) };
    });
}

/** What a file event says of a file a reply carried. */
interface FileEvent {
  readonly name: string;
  readonly contentType: string;
  readonly size: number;
  readonly title?: string;
  /** Where the page downloads it, on the server's origin. */
  readonly url: string;
}

/**
 * The reply's text (and how many text events brought it) and its files, after checking the
 * stream's shape: text and file events, then `done`, then nothing.
 */
async function streamedReply(response: Response): Promise<{ text: string; pieces: number; files: FileEvent[] }> {
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = parseEvents(await response.text());
  const last = events.pop();
  assert.deepEqual(last, { event: 'done', data: {} });
  assert.ok(events.length > 0, 'a reply has at least one event');
  let text = '';
  let pieces = 0;
  const files: FileEvent[] = [];
  for (const { event, data } of events) {
    assert.ok(event === 'message' || event === 'file', `an event named ${event}`);
    if (event === 'file') {
      files.push(data as FileEvent);
      continue;
    }
    assert.equal(typeof (data as { text?: unknown }).text, 'string', `a text event's data is {"text": ...}: ${JSON.stringify(data)}`);
    text += (data as { text: string }).text;
    pieces += 1;
  }
  return { text, pieces, files };
}

/**
 * Writes the parts on one connection, as fast as the server reads them, and returns all it
 * sends back until it closes. A server that stops reading fails this within 5 s.
 */
function rawExchange(url: string, parts: readonly Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const total = parts.reduce((sum, part) => sum + part.length, 0);
    let written = 0;
    const received: Buffer[] = [];
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of the exchange after 5 s: ${written} of ${total} bytes written, received ${JSON.stringify(Buffer.concat(received).toString().slice(0, 200))}`));
    }, 5000);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(received).toString());
    });
    for (const part of parts) socket.write(part, () => (written += part.length));
  });
}

async function jsonError(response: Response, status: number): Promise<string> {
  assert.equal(response.status, status);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = (await response.json()) as { error?: unknown };
  assert.equal(typeof body.error, 'string');
  return body.error as string;
}

describe('local HTTP server', () => {
  let scratch: ScratchApp;
  let chat: LocalChatServer;
  let url: string;

  before(async () => {
    scratch = await createScratchApp();
    chat = await started(new LocalChatServer(scratch.app.engine, { port: 0, logger: silentLogger, modelFigures: () => scratch.app.services.scorer.liveEvaluation() }));
    url = chat.url;
  });

  after(async () => {
    await chat?.stop();
    await scratch?.close();
  });

  const ask = (text: string, userId = 'alice') =>
    fetch(`${url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId, text }) });
  const upload = (name: string, body: Uint8Array, userId = 'alice') =>
    fetch(`${url}/api/upload?userId=${encodeURIComponent(userId)}&name=${encodeURIComponent(name)}`, { method: 'POST', body });

  it('serves the chat page, and ok on /healthz', async () => {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const html = await page.text();
    for (const id of ['text', 'send', 'file']) assert.ok(html.includes(`id="${id}"`), `the page has #${id}`);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
  });

  it('imports an uploaded markdown FAQ and answers its questions from it', async () => {
    const bytes = await readFile(SAMPLE_FAQ);
    const records = parseFaqDocument(bytes, 'markdown').records;
    const imported = await streamedReply(await upload('sample-faq.md', bytes));
    assert.match(imported.text, /^Imported sample-faq\.md \(merge\):/);
    assert.ok(imported.text.includes(`+ ${records.length} new`), imported.text);
    assert.ok(imported.text.includes('  + What is tunebot?'), imported.text);

    const answered = await streamedReply(await ask('What is tunebot?'));
    assert.equal(answered.text, records.find((record) => record.question === 'What is tunebot?')?.answer);

    const again = await streamedReply(await upload('sample-faq.md', bytes));
    assert.ok(again.text.includes('+ 0 new'), again.text);
    assert.ok(again.text.includes(`= ${records.length} unchanged`), again.text);
  });

  it('sends /faq export as a file event whose address serves the file, which imports back as the same entries', async () => {
    const expected = await faqEntries(scratch.app.services.faqFor({ platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: 'alice', displayName: 'alice' }, text: '', attachments: [], platformAdmin: true }));
    const reply = await streamedReply(await ask('/faq export csv'));
    assert.equal(reply.text, '');
    const [file] = reply.files;
    assert.deepEqual([file.name, file.contentType, file.title], ['faq.csv', 'text/csv; charset=utf-8', `The FAQ (${expected.length} entries) as csv.`]);
    assert.match(file.url, /^\/api\/files\/[\w-]+\/faq\.csv$/);
    const download = await fetch(new URL(file.url, url));
    assert.equal(download.status, 200);
    assert.equal(download.headers.get('content-type'), file.contentType);
    assert.equal(download.headers.get('content-disposition'), `attachment; filename="faq.csv"; filename*=UTF-8''faq.csv`);
    const bytes = new Uint8Array(await download.arrayBuffer());
    assert.equal(bytes.length, file.size);
    assert.deepEqual(exportedEntries(bytes, 'csv'), expected);
    assert.match(await jsonError(await fetch(`${url}/api/files/unknown/faq.csv`), 404), /^no file unknown: a reply's files are kept for 30 minutes; ask again$/);
  });

  it("answers a question the FAQ only touches with an FAQ answer or the fallback, never the model's own words, and the fallback to one it lacks", async () => {
    const { settings } = scratch.app.services;
    const faq = scratch.app.services.faqFor({ platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: 'alice', displayName: 'alice' }, text: '', attachments: [], platformAdmin: false });
    const answers = new Set([settings.fallback, ...(await faq.entries()).map((entry) => entry.answer)]);
    const doubtful = await streamedReply(await ask('How do I export my data?'));
    assert.equal(doubtful.pieces, 1);
    assert.ok(answers.has(doubtful.text), `an FAQ answer or the fallback: ${doubtful.text}`);
    const unknown = await streamedReply(await ask('Which colour is the sea at night in winter?'));
    assert.deepEqual(unknown, { text: settings.fallback, pieces: 1, files: [] });
  });

  it("serves the live version's last evaluation at /api/model, which /model eval makes and says", async () => {
    const figures = async () => {
      const response = await fetch(`${url}/api/model`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      return (await response.json()) as LiveEvaluation & { summary: string };
    };
    assert.deepEqual(await figures(), { version: 'v1', evaluation: null, summary: 'Live model v1: not evaluated yet; /model eval scores it.' });

    const faq = scratch.app.services.faqFor({ platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: 'alice', displayName: 'alice' }, text: '', attachments: [], platformAdmin: true });
    const entries = await faq.entries();
    const heldOut = entries.flatMap((entry) => heldOutQuestions(entry, loadConfig({}).fineTune.heldOutQuestions)).length;
    const evaluated = await streamedReply(await ask('/model eval'));
    const { version, evaluation, summary } = await figures();
    assert.equal(evaluated.text, summary, 'the page shows what /model eval said');
    assert.equal(version, 'v1');
    assert.ok(evaluation);
    assert.deepEqual([evaluation.version, evaluation.faq], ['v1', faq.scope]);
    const { originals, heldOut: held } = evaluation.score;
    // Every FAQ question is its own entry's, word for word: certain, answered from the FAQ.
    assert.deepEqual(originals, { asked: entries.length, correct: entries.length, wrong: 0, abstained: 0 });
    assert.equal(held.asked, heldOut);
    assert.equal(held.correct + held.wrong + held.abstained, heldOut);
    assert.equal(
      summary,
      `Live model v1 answers ${held.correct} right, ${held.wrong} wrong, ${held.abstained} abstained of ${heldOut} held-out questions and ` +
        `${entries.length} right, 0 wrong, 0 abstained of ${entries.length} FAQ questions (FAQ ${faq.scope}, ${evaluation.at.slice(0, 16).replace('T', ' ')} UTC).`,
    );
  });

  it('gives a clear reply to a binary upload', async () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]);
    const byContent = await streamedReply(await upload('faq.md', png));
    assert.match(byContent.text, /^Could not do that: the file looks binary \(a NUL byte at byte 8\); FAQ files are UTF-8 text/);
    const byName = await streamedReply(await upload('logo.png', png));
    assert.match(byName.text, /^Could not do that: cannot tell the format of "logo\.png" from its name; FAQ files end in \.csv, /);
  });

  it('refuses malformed messages with a JSON error', async () => {
    const notJson = await fetch(`${url}/api/messages`, { method: 'POST', body: 'What is tunebot?' });
    assert.match(await jsonError(notJson, 400), /must be JSON/);
    const noUser = await fetch(`${url}/api/messages`, { method: 'POST', body: JSON.stringify({ text: 'hi' }) });
    assert.match(await jsonError(noUser, 400), /userId .* required/);
    const emptyUser = await ask('hi', '');
    assert.match(await jsonError(emptyUser, 400), /userId .* required/);
    const noText = await fetch(`${url}/api/messages`, { method: 'POST', body: JSON.stringify({ userId: 'alice', text: 7 }) });
    assert.match(await jsonError(noText, 400), /text \(a string\)/);
    const uploadWithoutName = await fetch(`${url}/api/upload?userId=alice`, { method: 'POST', body: 'x' });
    assert.match(await jsonError(uploadWithoutName, 400), /userId and name/);
  });

  it('takes a message body of exactly 1 MB, and refuses a larger one with 413', async () => {
    const limit = 1024 * 1024;
    const body = (size: number) => {
      const frame = JSON.stringify({ userId: 'alice', text: '' });
      return JSON.stringify({ userId: 'alice', text: 'a'.repeat(size - frame.length) });
    };
    const atLimit = await streamedReply(await fetch(`${url}/api/messages`, { method: 'POST', body: body(limit) }));
    assert.match(atLimit.text, /^That message is 1,048,5\d\d characters long; I read up to 4,000\./);
    const over = await fetch(`${url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(limit + 1) });
    assert.match(await jsonError(over, 413), /limited to 1048576 bytes/);
  });

  it('reads a body far over the limit to its end, so the 413 arrives and the connection serves the next request', async () => {
    const size = 16 * 1024 * 1024;
    const replies = await rawExchange(url, [
      Buffer.from(`POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${size}\r\n\r\n`),
      Buffer.alloc(size, 'a'),
      Buffer.from('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    ]);
    assert.match(replies, /^HTTP\/1\.1 413 [^]*limited to 1048576 bytes[^]*HTTP\/1\.1 200 OK\r\n[^]*\r\n2\r\nok\r\n0\r\n\r\n$/);
  });

  it('answers 404 with a JSON error for an unknown route or method', async () => {
    assert.match(await jsonError(await fetch(`${url}/api/nothing`), 404), /no route GET \/api\/nothing/);
    assert.match(await jsonError(await fetch(`${url}/api/messages`), 404), /no route GET \/api\/messages/);
    assert.match(await jsonError(await fetch(`${url}/healthz`, { method: 'POST', body: '' }), 404), /no route POST \/healthz/);
  });
});

describe('local HTTP server: files kept 1 s, 100 bytes at most', () => {
  let chat: LocalChatServer;
  let url: string;

  before(async () => {
    chat = await started(new LocalChatServer(fileEngine, { port: 0, logger: silentLogger, files: { keepMs: 1000, maxBytes: 100 } }));
    url = chat.url;
  });

  after(async () => {
    await chat?.stop();
  });

  const ask = async (text: string) => streamedReply(await fetch(`${url}/api/messages`, { method: 'POST', body: JSON.stringify({ userId: 'alice', text }) }));

  it('serves a file until it is no longer kept', async () => {
    const reply = await ask('the small one');
    assert.equal(reply.text, FILE_LINE);
    const served = await fetch(new URL(reply.files[0].url, url));
    assert.deepEqual(new Uint8Array(await served.arrayBuffer()), dataBin(false));
    await sleep(1050);
    assert.match(await jsonError(await fetch(new URL(reply.files[0].url, url)), 404), /^no file [\w-]+: a reply's files are kept for/);
  });

  it('drops the oldest files to make room for a new one', async () => {
    const replies = [await ask('one'), await ask('two'), await ask('three')];
    const statuses = await Promise.all(replies.map(async (reply) => (await fetch(new URL(reply.files[0].url, url))).status));
    assert.deepEqual(statuses, [404, 200, 200]);
  });

  it('says in the text, instead of a file event, that a file is larger than it keeps', async () => {
    const reply = await ask('the big one');
    assert.deepEqual(reply, { text: `${FILE_LINE}\nI cannot send data.bin here: it is 200 B, and the local chat takes files up to 100 B.`, pieces: 2, files: [] });
  });
});

/** POSTs `text` with node:http (whose reader can stop and pause, unlike fetch's), calling `onResponse` with the live response. */
function postMessage(url: string, text: string, onResponse: (response: IncomingMessage, request: ClientRequest) => void): ClientRequest {
  const request = httpRequest(`${url}/api/messages`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (response) => onResponse(response, request));
  request.on('error', () => undefined); // a request the test destroys ends with ECONNRESET
  request.end(JSON.stringify({ userId: 'alice', text }));
  return request;
}

describe('local HTTP server: a client that goes away, and one that reads slowly', () => {
  let scratch: ScratchApp;

  before(async () => {
    scratch = await createScratchApp();
  });

  after(async () => {
    await scratch?.close();
  });

  async function serve(engine: ChatEngine): Promise<{ url: string; close(): Promise<void> }> {
    const chat = await started(new LocalChatServer(engine, { port: 0, logger: silentLogger }));
    return { url: chat.url, close: () => chat.stop() };
  }

  it("cancels the model's generation when the client closes the connection mid-reply", async () => {
    let generation: GenerationStream | null = null;
    let signal: AbortSignal | undefined;
    const engine: ChatEngine = {
      async *handle(message) {
        signal = message.signal;
        generation = scratch.app.services.model.generate('Tell me a long story', { seed: 3, maxNewTokens: 100 });
        assert.ok(generation, 'the scratch app has a model live');
        yield* generation;
      },
    };
    const local = await serve(engine);
    try {
      const firstChunk = new Promise<void>((resolve) => postMessage(local.url, 'go on', (response, request) => response.once('data', () => (request.destroy(), resolve()))));
      await firstChunk;
      const started = generation as GenerationStream | null;
      assert.ok(started);
      await assert.rejects(started.result, (error: unknown) => error instanceof ModelError && error.code === 'ABORTED');
      assert.equal(signal?.aborted, true, "the message's signal tells the engine too");
    } finally {
      await local.close();
    }
  });

  it('writes no faster than the client reads: the reply waits for the connection to drain', async () => {
    const PIECES = 200;
    const piece = 'x'.repeat(256 * 1024);
    let produced = 0;
    const engine: ChatEngine = {
      async *handle() {
        for (; produced < PIECES; produced++) yield piece;
      },
    };
    const local = await serve(engine);
    try {
      let whilePaused = -1;
      const body = await new Promise<string>((resolve, reject) => {
        postMessage(local.url, 'a long one', (response) => {
          response.setEncoding('utf8');
          const chunks: string[] = [];
          response.on('data', (chunk: string) => chunks.push(chunk));
          response.once('end', () => resolve(chunks.join('')));
          response.once('error', reject);
          // Stops reading after the first chunk; TCP then pushes back on the server.
          response.once('data', () => {
            response.pause();
            setTimeout(() => {
              whilePaused = produced;
              response.resume();
            }, 500);
          });
        });
      });
      // Kernel buffers on loopback hold a few MiB: a dozen pieces of 256 KiB.
      assert.ok(whilePaused >= 0 && whilePaused < PIECES / 4, `the engine ran ahead of a paused client: ${whilePaused} of ${PIECES} pieces`);
      const events = parseEvents(body);
      assert.deepEqual(events.pop(), { event: 'done', data: {} });
      assert.equal(events.length, PIECES);
      assert.ok(events.every((event) => (event.data as { text: string }).text === piece));
    } finally {
      await local.close();
    }
  });
});

describe('local HTTP server: an engine failure', () => {
  it("ends the stream with an error event: a coded error's message, or the generic reply for a bug, whose message is logged only", async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const engine: ChatEngine = {
      async *handle(message) {
        yield 'Let me check.';
        if (message.text === 'coded') throw new StorageError('STORAGE_UNAVAILABLE', 'cannot reach Redis storage redis://127.0.0.1:1');
        throw new TypeError("Cannot read properties of undefined (reading 'entries')");
      },
    };
    const chat = await started(new LocalChatServer(engine, { port: 0, logger }));
    const { url } = chat;
    try {
      const eventsOf = async (text: string) => parseEvents(await (await fetch(`${url}/api/messages`, { method: 'POST', body: JSON.stringify({ userId: 'alice', text }) })).text());
      assert.deepEqual(await eventsOf('coded'), [
        { event: 'message', data: { text: 'Let me check.' } },
        { event: 'error', data: { error: 'Could not do that: cannot reach Redis storage redis://127.0.0.1:1' } },
      ]);
      assert.deepEqual(await eventsOf('anything'), [
        { event: 'message', data: { text: 'Let me check.' } },
        { event: 'error', data: { error: SOMETHING_WENT_WRONG } },
      ]);
      assert.ok(lines.some((line) => line.includes("reading 'entries'")), 'the bug is logged');
    } finally {
      await chat.stop();
    }
  });
});
