import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { LocalChatServer } from '../../src/adapters/local/http-server.js';
import { SAMPLE_FAQ } from '../../src/core/app.js';
import { parseFaqDocument } from '../../src/core/faq/formats.js';
import type { ReplyPart } from '../../src/core/conversation/reply.js';
import { silentLogger } from '../../src/log.js';
import { encodePngRgb } from '../../src/model/training/loss-curve/png.js';
import { createScratchApp, type ScratchApp } from '../helpers/local-app.js';
import { exportedEntries, faqEntries } from '../helpers/reply-files.js';
import { started } from '../helpers/started.js';

/** Debian's package; CI installs it (.ci/run), playwright-core downloads no browser. */
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the local chat page in headless Chromium', () => {
  let scratch: ScratchApp;
  let chat: LocalChatServer;
  let browser: Browser;
  let page: Page;
  let url: string;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: these tests drive the chat page in Debian's Chromium; install it with apt-get install chromium (.ci/run does)`);
    scratch = await createScratchApp();
    chat = await started(new LocalChatServer(scratch.app.engine, { port: 0, logger: silentLogger, modelFigures: () => scratch.app.services.scorer.liveEvaluation() }));
    url = chat.url;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 20_000 });
    page = await browser.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(url);
  });

  after(async () => {
    await browser?.close();
    await chat?.stop();
    await scratch?.close();
  });

  /** The text of the n-th bot bubble (0-based), once its reply has streamed to the end. */
  async function botReply(n: number): Promise<string> {
    const bubble = page.locator('.turn.bot').nth(n);
    await bubble.and(page.locator('[data-done="true"]')).waitFor();
    return bubble.innerText();
  }

  it('imports an FAQ file chosen with the Import FAQ button', async () => {
    const records = parseFaqDocument(await readFile(SAMPLE_FAQ), 'markdown').records;
    await page.setInputFiles('#file', SAMPLE_FAQ);
    assert.equal(await page.locator('.turn.user').last().innerText(), '/faq import sample-faq.md');
    const reply = await botReply(0);
    assert.match(reply, /^Imported sample-faq\.md \(merge\):/);
    assert.ok(reply.includes(`+ ${records.length} new`), reply);
    assert.ok(reply.includes('+ What is tunebot?'), reply);
  });

  it('answers a question typed and sent with the Send button, from the FAQ', async () => {
    const records = parseFaqDocument(await readFile(SAMPLE_FAQ), 'markdown').records;
    await page.fill('#text', 'What is tunebot?');
    await page.click('#send');
    assert.equal(await page.inputValue('#text'), '', 'the input is cleared once sent');
    assert.equal(await page.locator('.turn.user').last().innerText(), 'What is tunebot?');
    assert.equal(await botReply(1), records.find((record) => record.question === 'What is tunebot?')?.answer);
  });

  it('shows a clear reply when the chosen file is not text', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]);
    await page.setInputFiles('#file', { name: 'faq.md', mimeType: 'text/markdown', buffer: png });
    assert.match(await botReply(2), /^Could not do that: the file looks binary \(a NUL byte at byte 8\); FAQ files are UTF-8 text/);
  });

  it('sends with the Enter key and keeps every turn in order', async () => {
    await page.fill('#text', '/faq list');
    await page.press('#text', 'Enter');
    assert.match(await botReply(3), /^FAQ page 1\/\d+ \(\d+ entries\):\n1\. What is tunebot\?/);
    const turns = await page.locator('.turn').evaluateAll((elements) => elements.map((element) => element.className.replace('turn ', '')));
    assert.deepEqual(turns, ['user', 'bot', 'user', 'bot', 'user', 'bot', 'user', 'bot']);
  });

  it('shows an exported FAQ as a link that downloads the file', async () => {
    await page.fill('#text', '/faq export json');
    await page.press('#text', 'Enter');
    await botReply(4);
    const link = page.locator('.turn.bot').nth(4).locator('.attachment a');
    assert.equal(await link.getAttribute('download'), 'faq.json');
    assert.match(await link.innerText(), /^faq\.json \([\d,]+ bytes\)$/);
    const download = await fetch(new URL((await link.getAttribute('href')) ?? '', url));
    const local = { platform: 'local', scope: { workspace: 'local', channel: 'web' }, user: { id: 'page', displayName: 'page' }, text: '', attachments: [], platformAdmin: true };
    assert.deepEqual(exportedEntries(new Uint8Array(await download.arrayBuffer()), 'json'), await faqEntries(scratch.app.services.faqFor(local)));
  });

  it('shows a PNG a reply carries as a picture, beside its link', async () => {
    const png = encodePngRgb(new Uint8Array(4 * 3 * 3).fill(200), 4, 3);
    const engine = {
      async *handle(): AsyncIterable<ReplyPart> {
        yield 'The loss curve:';
        yield { kind: 'file', name: 'loss-curve-v2.png', contentType: 'image/png', data: png, title: 'Training loss of v2.' };
      },
    };
    const pictures = await started(new LocalChatServer(engine, { port: 0, logger: silentLogger }));
    const other = await browser.newPage();
    try {
      await other.goto(pictures.url);
      await other.fill('#text', '/model finetune');
      await other.press('#text', 'Enter');
      // A string, run in the page: the tests compile without the DOM's types.
      const width = await other.waitForFunction("document.querySelector('.attachment img')?.complete && document.querySelector('.attachment img').naturalWidth");
      assert.equal(await width.jsonValue(), 4);
      assert.equal(await other.locator('.attachment a').getAttribute('download'), 'loss-curve-v2.png');
      assert.match(await other.locator('.turn.bot').innerText(), /^The loss curve:\s*Training loss of v2\. loss-curve-v2\.png \(\d+ bytes\)/);
    } finally {
      await other.close();
      await pictures.stop();
    }
  });

  it("shows the live version's figures in a line under the header, and the new ones after /model eval", async () => {
    assert.equal(await page.locator('#model').innerText(), 'Live model v1: not evaluated yet; /model eval scores it.');
    await page.fill('#text', '/model eval');
    await page.press('#text', 'Enter');
    const said = await botReply(5);
    assert.match(said, /^Live model v1 answers \d+ right, \d+ wrong, \d+ abstained of \d+ held-out questions and \d+ right/);
    // The line is read again once the reply has ended.
    await page.waitForFunction(`document.getElementById('model').textContent === ${JSON.stringify(said)}`);
  });
});
