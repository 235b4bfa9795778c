import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SlackAdapter, type SlackConfig } from '../../src/adapters/slack/slack-adapter.js';
import { SLACK_MESSAGES, toSlackText } from '../../src/adapters/slack/slack-text.js';
import type { FaqStore } from '../../src/core/faq/faq-store.js';
import { silentLogger } from '../../src/log.js';
import type { ScratchApp } from '../helpers/local-app.js';
import { type LoopbackSlack, postSigned, waitFor } from '../helpers/loopback-slack.js';
import { dataBin, exportedEntries, FILE_LINE, faqEntries, fileEngine } from '../helpers/reply-files.js';
import {
  appMention,
  BOT_ID,
  BOT_TOKEN,
  BOT_USER,
  directMessage,
  eventCallback,
  postsIn,
  reaction,
  replyIn as replyInOf,
  SIGNING_SECRET,
  type SlackWorkspace,
  slashCommand,
  startSlackWorkspace,
  startWorkspaceSlack,
  TEAM,
} from '../helpers/slack-fixture.js';
import { started } from '../helpers/started.js';

/**
 * The Slack adapter as Slack drives it: Bolt's own HTTP receiver gets signed requests at
 * /slack/events, and its Web API client talks to a loopback Slack. The engine behind it is
 * the real one, with a real tiny model and the sample FAQ.
 */
describe('Slack adapter (Bolt over HTTP, loopback Slack)', () => {
  let workspace: SlackWorkspace;
  let scratch: ScratchApp;
  let slack: LoopbackSlack;
  let adapter: SlackAdapter;
  let eventsUrl: string;
  let faq: FaqStore;
  let sampleAnswers: ReadonlyMap<string, string>;

  const postEvent = (event: Record<string, unknown>, eventId: string, retryNum?: number) => postSigned(eventsUrl, eventCallback(event, eventId), { signingSecret: SIGNING_SECRET, retryNum });
  const posts = (channel: string) => postsIn(slack, channel);
  const replyIn = (channel: string, count = 1) => replyInOf(slack, adapter, channel, count);
  const questions = async () => (await faq.entries()).map((entry) => entry.question);

  before(async () => {
    workspace = await startSlackWorkspace();
    ({ scratch, slack, faq, sampleAnswers } = workspace);
    adapter = await started(new SlackAdapter(scratch.app.engine, {
      config: { mode: 'http', botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, appToken: null, port: 0, apiUrl: slack.apiUrl },
      logger: silentLogger,
      host: '127.0.0.1',
    }));
    eventsUrl = `http://127.0.0.1:${adapter.port}/slack/events`;
  });

  after(async () => {
    await adapter?.stop();
    await workspace?.close();
  });

  it('checks the bot token once at start, answers the url_verification challenge, and serves /healthz', async () => {
    assert.deepEqual(adapter.bot, { userId: BOT_USER, botId: BOT_ID, teamId: TEAM });
    assert.equal(slack.callsTo('auth.test').length, 1);
    const response = await postSigned(eventsUrl, { token: 'legacy-token', challenge: 'challenge-123', type: 'url_verification' }, { signingSecret: SIGNING_SECRET });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { challenge: 'challenge-123' });
    const health = await fetch(`http://127.0.0.1:${adapter.port}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'ok');
  });

  it("answers a mention in its thread with the engine's answer, and remembers the question without the mention", async () => {
    // Reply streaming and chat.update pacing: slack-reply.test.ts.
    const mention = appMention('C-MENTION', 'UMAX', 'How do I export my data?');
    assert.equal((await postEvent(mention, 'Ev-mention')).status, 200);
    const [post] = await replyIn('C-MENTION');
    assert.equal(post.args.thread_ts, mention.ts, 'the reply goes in the thread of the mention');
    assert.equal(post.token, BOT_TOKEN);
    const replyTs = [...slack.messages.values()].find((message) => message.channel === 'C-MENTION')?.ts;

    const memory = await scratch.app.services.memory.exportUser({ platform: 'slack', workspace: TEAM }, 'UMAX');
    assert.deepEqual(memory.turns.map((turn) => turn.role), ['user', 'assistant']);
    assert.equal(memory.turns[0].text, 'How do I export my data?', "the bot's mention is not part of the question");
    assert.equal(slack.messages.get(replyTs ?? '')?.text, toSlackText(memory.turns[1].text));
  });

  it('answers a direct message beside it, from the FAQ', async () => {
    assert.equal((await postEvent(directMessage('D-MIA', 'UMIA', 'What is tunebot?'), 'Ev-dm')).status, 200);
    const [post] = await replyIn('D-MIA');
    assert.equal(post.args.thread_ts, undefined);
    assert.equal(post.args.text, toSlackText(sampleAnswers.get('What is tunebot?') ?? ''));
    assert.equal(slack.callsTo('chat.update').filter((call) => call.args.channel === 'D-MIA').length, 0, 'a one-piece answer is not updated');
  });

  it('answers an event once when Slack retries it, or delivers the message again under another event', async () => {
    const question = directMessage('D-BEN', 'UBEN', 'What is tunebot?');
    assert.equal((await postEvent(question, 'Ev-retried')).status, 200);
    await replyIn('D-BEN');
    assert.equal((await postEvent(question, 'Ev-retried', 1)).status, 200);
    assert.equal((await postEvent(question, 'Ev-same-message')).status, 200);
    assert.equal((await postEvent(directMessage('D-BEN', 'UBEN', 'How do I see the FAQ?'), 'Ev-after-retry')).status, 200);
    const replies = await replyIn('D-BEN', 2);
    assert.deepEqual(
      replies.map((call) => call.args.text),
      [toSlackText(sampleAnswers.get('What is tunebot?') ?? ''), toSlackText(sampleAnswers.get('How do I see the FAQ?') ?? '')],
    );
  });

  it("ignores its own messages, other bots' messages and edits", async () => {
    const ignored = [
      directMessage('D-IGNORE', BOT_USER, 'What is tunebot?', { bot_id: BOT_ID }),
      directMessage('D-IGNORE', BOT_USER, 'What is tunebot?'),
      { ...directMessage('D-IGNORE', 'UIGNORED', 'What is tunebot?', { subtype: 'bot_message', bot_id: 'BOTHER' }), user: undefined },
      directMessage('D-IGNORE', 'UOTHERBOT', 'What is tunebot?', { bot_id: 'BOTHER' }),
      directMessage('D-IGNORE', 'UZOE', 'What is tunebot?', { subtype: 'message_changed' }),
      appMention('C-IGNORE', BOT_USER, 'What is tunebot?'),
      { ...directMessage('C-IGNORE', 'UZOE', 'What is tunebot?'), channel_type: 'channel' },
    ];
    for (const [i, event] of ignored.entries()) assert.equal((await postEvent(event, `Ev-ignored-${i}`)).status, 200);
    // Answered after all of them arrived: once it is done, so is whatever they started.
    assert.equal((await postEvent(directMessage('D-IGNORE', 'UZOE', 'How do I see the FAQ?'), 'Ev-not-ignored')).status, 200);
    const replies = await replyIn('D-IGNORE');
    assert.deepEqual(replies.map((call) => call.args.text), [toSlackText(sampleAnswers.get('How do I see the FAQ?') ?? '')]);
    assert.equal(posts('C-IGNORE').length, 0);
  });

  it('refuses a forged signature and a stale timestamp with 401, and posts nothing', async () => {
    const callsBefore = slack.calls.length;
    const forged = await postSigned(eventsUrl, eventCallback(directMessage('D-FORGED', 'UZOE', 'What is tunebot?'), 'Ev-forged'), { signingSecret: 'not-the-secret' });
    assert.equal(forged.status, 401);
    const sixMinutesAgo = Math.floor(Date.now() / 1000) - 6 * 60;
    const stale = await postSigned(eventsUrl, eventCallback(directMessage('D-FORGED', 'UZOE', 'What is tunebot?'), 'Ev-stale'), { signingSecret: SIGNING_SECRET, timestamp: sixMinutesAgo });
    assert.equal(stale.status, 401);
    const staleCommand = await postSigned(eventsUrl, slashCommand('/faq', 'add "Forged?" "Yes."', 'UADA', 'C-FORGED', slack.responseUrl()), { signingSecret: SIGNING_SECRET, timestamp: sixMinutesAgo, form: true });
    assert.equal(staleCommand.status, 401);
    await adapter.idle();
    assert.equal(slack.calls.length, callsBefore, 'no Web API call followed a refused request');
    assert.equal(slack.responses.length, 0);
    assert.ok(!(await questions()).includes('Forged?'));
  });

  it('runs /faq add for a workspace admin, acknowledging at once and answering through response_url', async () => {
    const responseUrl = slack.responseUrl();
    const sentAt = Date.now();
    const response = await postSigned(eventsUrl, slashCommand('/faq', 'add “Where is the office?” “On the third floor.” places', 'UADA', 'C-CMD', responseUrl), { signingSecret: SIGNING_SECRET, form: true });
    const ackedAt = Date.now();
    assert.equal(response.status, 200);
    assert.ok(ackedAt - sentAt < 3000, `acknowledged in ${ackedAt - sentAt} ms`);
    const answer = await waitFor('the response_url post', () => slack.responses.find((posted) => responseUrl.endsWith(`/${posted.id}`)));
    assert.ok(answer.at >= ackedAt - 5, 'the work is answered after the acknowledgement');
    assert.match(answer.body.text ?? '', /^Added \S+: "Where is the office\?"$/u);
    assert.equal(answer.body.response_type, 'ephemeral');
    const entry = (await faq.entries()).find((candidate) => candidate.question === 'Where is the office?');
    assert.equal(entry?.answer, 'On the third floor.');
    assert.deepEqual(entry?.tags, ['places']);
  });

  it('refuses /faq add from a member, and takes the owner as an admin', async () => {
    const before = await questions();
    const refusedUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/faq', 'add "Where is the parking?" "Behind the building."', 'UMAX', 'C-CMD', refusedUrl), { signingSecret: SIGNING_SECRET, form: true });
    const refused = await waitFor('the refusal', () => slack.responses.find((posted) => refusedUrl.endsWith(`/${posted.id}`)));
    assert.match(refused.body.text ?? '', /^\/faq add is for admins only\./u);
    assert.deepEqual(await questions(), before, 'the FAQ is unchanged');

    const ownerUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/faq', 'add "Where is the parking?" "Behind the building."', 'UOWEN', 'C-CMD', ownerUrl), { signingSecret: SIGNING_SECRET, form: true });
    const added = await waitFor('the owner\'s answer', () => slack.responses.find((posted) => ownerUrl.endsWith(`/${posted.id}`)));
    assert.match(added.body.text ?? '', /^Added /u);
    assert.ok((await questions()).includes('Where is the parking?'));
  });

  it('imports an FAQ file shared in a DM with the comment "faq import", downloading it with the bot token', async () => {
    const csv = 'question,answer\nHow do I reset my password?,Use the link on the sign-in page.\nWho runs this bot?,The support team.\n';
    const file = slack.addFile({ name: 'extra-faq.csv', content: csv, user: 'UADA', channel: 'D-ADA' });
    const share = directMessage('D-ADA', 'UADA', 'faq import', { subtype: 'file_share', files: [{ id: file, name: 'extra-faq.csv', size: csv.length }] });
    assert.equal((await postEvent(share, 'Ev-import')).status, 200);
    const [reply] = await replyIn('D-ADA');
    assert.match(reply.args.text, /^Imported extra-faq\.csv \(merge\):\n\+ 2 new/u);
    assert.deepEqual(slack.callsTo('files.info').map((call) => call.args.file), [file]);
    assert.deepEqual(slack.downloads, [{ fileId: file, authorization: `Bearer ${BOT_TOKEN}`, served: true }]);
    assert.ok((await questions()).includes('How do I reset my password?'));

    assert.equal((await postEvent(directMessage('D-ADA', 'UADA', 'How do I reset my password?'), 'Ev-imported-question')).status, 200);
    const answered = await replyIn('D-ADA', 2);
    assert.equal(answered[1].args.text, 'Use the link on the sign-in page.');
  });

  it('imports, as the slash command /faq import, the newest file the admin shared in the channel', async () => {
    const markdown = '## Which port does the Slack adapter use?\nPort 3000 unless slack.port says otherwise.\n';
    const file = slack.addFile({ name: 'more.md', content: markdown, user: 'UADA', channel: 'C-FILES' });
    const responseUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/faq', 'import', 'UADA', 'C-FILES', responseUrl), { signingSecret: SIGNING_SECRET, form: true });
    const answer = await waitFor('the import answer', () => slack.responses.find((posted) => responseUrl.endsWith(`/${posted.id}`)));
    assert.match(answer.body.text ?? '', /^Imported more\.md \(merge\):\n\+ 1 new/u);
    const listing = slack.callsTo('files.list').at(-1);
    assert.deepEqual({ channel: listing?.args.channel, user: listing?.args.user }, { channel: 'C-FILES', user: 'UADA' });
    assert.equal(slack.downloads.at(-1)?.fileId, file);

    const noneUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/faq', 'import', 'UADA', 'C-EMPTY', noneUrl), { signingSecret: SIGNING_SECRET, form: true });
    const none = await waitFor('the no-file answer', () => slack.responses.find((posted) => noneUrl.endsWith(`/${posted.id}`)));
    assert.match(none.body.text ?? '', /^I found no file you shared here/u);
  });

  it('tells the admin, in the thread, when Slack will not hand over a shared file', async () => {
    const file = slack.addFile({ name: 'private.csv', content: 'question,answer\nA?,B.\n', user: 'UADA', channel: 'C-DENIED', signInPage: true });
    const mention = appMention('C-DENIED', 'UADA', 'faq import', { files: [{ id: file, name: 'private.csv' }] });
    assert.equal((await postEvent(mention, 'Ev-denied')).status, 200);
    const [reply] = await replyIn('C-DENIED');
    assert.equal(reply.args.thread_ts, mention.ts);
    assert.equal(reply.args.text, 'Could not do that: Slack sent its sign-in page instead of private.csv: the bot token needs the files:read scope');
    assert.ok(!(await questions()).includes('A?'));
  });

  it('answers /ask in the channel, from the FAQ', async () => {
    const responseUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/ask', 'What is tunebot?', 'UZOE', 'C-ASK', responseUrl), { signingSecret: SIGNING_SECRET, form: true });
    const answer = await waitFor('the answer', () => slack.responses.find((posted) => responseUrl.endsWith(`/${posted.id}`)));
    assert.deepEqual(answer.body, { response_type: 'in_channel', replace_original: false, text: toSlackText(sampleAnswers.get('What is tunebot?') ?? '') });
  });

  it('splits a long reply into messages under the section limit, in the thread, without losing text', async () => {
    const longAnswer = Array.from({ length: 60 }, (_, i) => `Step ${i + 1}: ${'open the settings page and check the values shown there. '.repeat(2).trim()}`).join('\n');
    assert.ok(longAnswer.length > 2 * SLACK_MESSAGES.limit);
    await faq.add('How do I configure every setting?', longAnswer);
    const mention = appMention('C-LONG', 'UADA', 'How do I configure every setting?');
    assert.equal((await postEvent(mention, 'Ev-long')).status, 200);
    await waitFor('the long answer', () => (posts('C-LONG').length >= 3 ? true : undefined));
    await adapter.idle();
    const parts = posts('C-LONG');
    for (const part of parts) {
      assert.equal(part.args.thread_ts, mention.ts);
      assert.ok(part.args.text.length <= SLACK_MESSAGES.limit, `a message of ${part.args.text.length} characters`);
    }
    const squash = (text: string) => text.replace(/\s+/gu, '');
    assert.equal(squash(parts.map((part) => part.args.text).join('')), squash(toSlackText(longAnswer)));
  });

  it('shares the FAQ exported from a mention as faq.json in the thread of the mention, a file that imports back as the same entries', async () => {
    const expected = await faqEntries(faq);
    const mention = appMention('C-EXPORT', 'UMAX', '/faq export json');
    assert.equal((await postEvent(mention, 'Ev-export')).status, 200);
    const upload = await waitFor('the shared file', () => slack.uploads.find((file) => file.channel === 'C-EXPORT'));
    await adapter.idle();
    assert.deepEqual([upload.name, upload.threadTs, upload.initialComment], ['faq.json', mention.ts, `The FAQ (${expected.length} entries) as json.`]);
    assert.deepEqual(exportedEntries(upload.bytes, 'json'), expected);
    assert.equal(posts('C-EXPORT').length, 0, 'the file is the whole reply');
    const [asked] = slack.callsTo('files.getUploadURLExternal').filter((call) => call.args.filename === 'faq.json');
    assert.equal(Number(asked.args.length), upload.bytes.length);
  });

  it('shares /faq export csv, run as a slash command, in the channel it was run in', async () => {
    const expected = await faqEntries(faq);
    const responseUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/faq', 'export csv', 'UZOE', 'C-SLASH-EXPORT', responseUrl), { signingSecret: SIGNING_SECRET, form: true });
    const upload = await waitFor('the shared file', () => slack.uploads.find((file) => file.channel === 'C-SLASH-EXPORT'));
    await adapter.idle();
    assert.deepEqual([upload.name, upload.threadTs], ['faq.csv', undefined]);
    assert.deepEqual(exportedEntries(upload.bytes, 'csv'), expected);
    assert.equal(slack.responses.filter((posted) => responseUrl.endsWith(`/${posted.id}`)).length, 0, 'no text: the file is the reply');
  });
});

describe('Slack adapter: files Slack does not take', () => {
  let slack: LoopbackSlack;
  let adapter: SlackAdapter;
  let eventsUrl: string;
  const postEvent = (event: Record<string, unknown>, eventId: string) => postSigned(eventsUrl, eventCallback(event, eventId), { signingSecret: SIGNING_SECRET });
  /** The text of the bot's one message in `channel`, once the reply is done. */
  const finalText = async (channel: string) => {
    await replyInOf(slack, adapter, channel);
    return [...slack.messages.values()].find((message) => message.channel === channel)?.text;
  };

  before(async () => {
    slack = await startWorkspaceSlack();
    slack.removeBotFrom('C-NOBOT');
    adapter = await started(new SlackAdapter(fileEngine, {
      config: { mode: 'http', botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, appToken: null, port: 0, apiUrl: slack.apiUrl },
      logger: silentLogger,
      host: '127.0.0.1',
      updateIntervalMs: 50,
      maxUploadBytes: 100,
    }));
    eventsUrl = `http://127.0.0.1:${adapter.port}/slack/events`;
  });

  after(async () => {
    await adapter?.stop();
    await slack?.close();
  });

  it('uploads a file under the limit, and says after the text that one over it is too large, uploading nothing', async () => {
    assert.equal((await postEvent(directMessage('D-SMALL', 'UMIA', 'the small one'), 'Ev-small')).status, 200);
    assert.equal(await finalText('D-SMALL'), FILE_LINE);
    assert.deepEqual(slack.uploads.map((upload) => [upload.channel, upload.name, upload.bytes]), [['D-SMALL', 'data.bin', dataBin(false)]]);

    assert.equal((await postEvent(directMessage('D-BIG', 'UMIA', 'the big one'), 'Ev-big')).status, 200);
    assert.equal(await finalText('D-BIG'), `${FILE_LINE}\n\nI cannot send data.bin here: it is 200 B, and Slack takes files up to 100 B.`);
    assert.equal(slack.uploads.length, 1);
    assert.equal(slack.callsTo('files.getUploadURLExternal').length, 1, 'no upload was started');
  });

  it('says so in the thread, after the text, when Slack refuses the upload', async () => {
    assert.equal((await postEvent(appMention('C-NOBOT', 'UMIA', 'the small one'), 'Ev-refused')).status, 200);
    assert.equal(await finalText('C-NOBOT'), `${FILE_LINE}\n\nI could not send data.bin: Slack refused the upload (not_in_channel).`);
    assert.ok(!slack.uploads.some((upload) => upload.channel === 'C-NOBOT'));
  });

  it('answers a slash command through response_url: the text, then why the file did not come', async () => {
    const responseUrl = slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/ask', 'the small one', 'UMIA', 'C-NOBOT', responseUrl), { signingSecret: SIGNING_SECRET, form: true });
    await waitFor('the note', () => (slack.responses.filter((posted) => responseUrl.endsWith(`/${posted.id}`)).length >= 2 ? true : undefined));
    await adapter.idle();
    const texts = slack.responses.filter((posted) => responseUrl.endsWith(`/${posted.id}`)).map((posted) => posted.body.text);
    assert.deepEqual(texts, [FILE_LINE, 'I could not send data.bin: Slack refused the upload (not_in_channel).']);
  });
});

describe('Slack adapter: :+1: and :-1: on answers', () => {
  const CANCEL_QUESTION = 'How do I cancel my subscription?';
  const APP_QUESTION = 'Is there a mobile app?';
  const INVOICE_QUESTION = 'Where do I send my invoices?';
  let workspace: SlackWorkspace;
  let adapter: SlackAdapter;
  let eventsUrl: string;
  let events = 0;
  /** Posts `event` as Slack does, and waits until the adapter has handled it. */
  const deliver = async (event: Record<string, unknown>) => {
    events += 1;
    assert.equal((await postSigned(eventsUrl, eventCallback(event, `Ev-reaction-${events}`), { signingSecret: SIGNING_SECRET })).status, 200);
    await adapter.idle();
  };
  const counted = async (kind: 'up' | 'down') => Number(new RegExp(`^tunebot_feedback_total\\{kind="${kind}"\\} (\\d+)$`, 'mu').exec(await workspace.scratch.app.services.metrics.render())?.[1]);
  /** The question `user` asks in DM `channel`, and the ts of the answer. */
  const askInDm = async (channel: string, user: string, text: string) => {
    const question = directMessage(channel, user, text);
    await deliver(question);
    const [answer] = await replyInOf(workspace.slack, adapter, channel);
    return { question: question.ts as string, answer: [...workspace.slack.messages.values()].find((message) => message.channel === channel)?.ts ?? assert.fail(`no answer in ${channel}: ${answer.args.text}`) };
  };
  /** /faq inbox as the workspace admin runs it. */
  const inboxListing = async () => {
    const responseUrl = workspace.slack.responseUrl();
    await postSigned(eventsUrl, slashCommand('/faq', 'inbox', 'UADA', 'C-ADMIN', responseUrl), { signingSecret: SIGNING_SECRET, form: true });
    return (await waitFor('the inbox', () => workspace.slack.responses.find((posted) => responseUrl.endsWith(`/${posted.id}`)))).body.text ?? '';
  };
  const entryIdOf = async (question: string) => (await workspace.faq.entries()).find((entry) => entry.question === question)?.id;

  before(async () => {
    workspace = await startSlackWorkspace();
    await workspace.faq.add(CANCEL_QUESTION, 'Open Billing in your account and press Cancel.');
    await workspace.faq.add(APP_QUESTION, 'Not yet: the web page works on phones.');
    await workspace.faq.add(INVOICE_QUESTION, 'Email them to billing@example.com.');
    adapter = await started(new SlackAdapter(workspace.scratch.app.engine, {
      config: { mode: 'http', botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, appToken: null, port: 0, apiUrl: workspace.slack.apiUrl },
      logger: silentLogger,
      host: '127.0.0.1',
      feedback: workspace.scratch.app.services.feedback,
    }));
    eventsUrl = `http://127.0.0.1:${adapter.port}/slack/events`;
  });

  after(async () => {
    await adapter?.stop();
    await workspace?.close();
  });

  it("a member's :-1: on the answer puts the question in the admins' inbox, marked as a thumbs-down, and is counted", async () => {
    const { answer } = await askInDm('D-MIA', 'UMIA', CANCEL_QUESTION);
    assert.doesNotMatch(await inboxListing(), /cancel/u, 'an FAQ answer is not in the inbox by itself');
    await deliver(reaction('UMIA', '-1', { channel: 'D-MIA', ts: answer }));
    assert.equal(await counted('down'), 1);
    const today = new Date().toISOString().slice(0, 10);
    assert.match(await inboxListing(), new RegExp(`^1\\. How do I cancel my subscription\\? \\(thumbs-down on my answer from ${await entryIdOf(CANCEL_QUESTION)} ${today}\\)$`, 'mu'));
  });

  it("counts a :+1: and a :thumbsdown: with a skin tone, and a user's :-1: once when taken back and given again; ignores the bot, other emoji and other messages", async () => {
    const { question, answer } = await askInDm('D-BEN', 'UBEN', APP_QUESTION);
    const onAnswer = { channel: 'D-BEN', ts: answer };
    await deliver(reaction('UBEN', '+1', onAnswer));
    await deliver(reaction('UMAX', 'thumbsdown::skin-tone-3', onAnswer));
    await deliver(reaction('UMAX', 'thumbsdown::skin-tone-3', onAnswer, true));
    await deliver(reaction('UMAX', 'thumbsdown::skin-tone-3', onAnswer));
    await deliver(reaction(BOT_USER, '-1', onAnswer));
    await deliver(reaction('UBEN', 'tada', onAnswer));
    await deliver(reaction('UBEN', '-1', { channel: 'D-BEN', ts: question, author: 'UBEN' }));
    await deliver({ ...reaction('UBEN', '-1', onAnswer), item: { type: 'file', file: 'F123' } });
    assert.deepEqual([await counted('up'), await counted('down')], [1, 2]);
    const entryId = (await entryIdOf(APP_QUESTION)) ?? assert.fail(`the FAQ has "${APP_QUESTION}"`);
    assert.deepEqual((await workspace.scratch.app.services.feedback.tallies('slack', TEAM)).get(entryId), { up: 1, down: 1 });
  });

  it('counts a :+1: on an answer in the thread of a mention, and takes it back when the reaction is removed', async () => {
    const mention = appMention('C-THANKS', 'UZOE', INVOICE_QUESTION);
    await deliver(mention);
    await replyInOf(workspace.slack, adapter, 'C-THANKS');
    const answer = [...workspace.slack.messages.values()].find((message) => message.channel === 'C-THANKS');
    assert.equal(answer?.threadTs, mention.ts);
    const ups = await counted('up');
    await deliver(reaction('UZOE', '+1', { channel: 'C-THANKS', ts: answer?.ts ?? '' }));
    assert.equal(await counted('up'), ups + 1);
    const entryId = (await entryIdOf(INVOICE_QUESTION)) ?? assert.fail(`the FAQ has "${INVOICE_QUESTION}"`);
    const tally = async () => (await workspace.scratch.app.services.feedback.tallies('slack', TEAM)).get(entryId)?.up;
    assert.equal(await tally(), 1);
    await deliver(reaction('UZOE', '+1', { channel: 'C-THANKS', ts: answer?.ts ?? '' }, true));
    assert.equal(await tally(), 0);
  });

  it('refuses feedback for an engine that does not tell which questions it answered', async () => {
    const config = { mode: 'http' as const, botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, appToken: null, port: 0, apiUrl: workspace.slack.apiUrl };
    await assert.rejects(started(new SlackAdapter({ handle: async function* () {} }, { config, logger: silentLogger, host: '127.0.0.1', feedback: workspace.scratch.app.services.feedback })), {
      code: 'SLACK_CONFIG_INVALID',
      message: /onAnswer/,
    });
  });
});

describe('Slack adapter start', () => {
  let slack: LoopbackSlack;
  before(async () => {
    slack = await startWorkspaceSlack();
  });
  after(async () => {
    await slack?.close();
  });

  const engine = { handle: async function* () {} };
  const start = (config: Partial<SlackConfig>) =>
    started(new SlackAdapter(engine, { config: { mode: 'http', botToken: BOT_TOKEN, signingSecret: SIGNING_SECRET, appToken: null, port: 0, apiUrl: slack.apiUrl, ...config }, logger: silentLogger, host: '127.0.0.1' }));

  it('names the setting that is missing for the chosen mode', async () => {
    await assert.rejects(start({ botToken: null }), { code: 'SLACK_CONFIG_INVALID', message: /bot token: set slack\.botToken \(TUNEBOT_SLACK_BOT_TOKEN or SLACK_BOT_TOKEN\)/ });
    await assert.rejects(start({ signingSecret: null }), { code: 'SLACK_CONFIG_INVALID', message: /signing secret to check requests: set slack\.signingSecret \(TUNEBOT_SLACK_SIGNING_SECRET or SLACK_SIGNING_SECRET\)/ });
    await assert.rejects(start({ mode: 'socket' }), { code: 'SLACK_CONFIG_INVALID', message: /app-level token: set slack\.appToken \(TUNEBOT_SLACK_APP_TOKEN or SLACK_APP_TOKEN\)/ });
  });

  it('fails with SLACK_AUTH_FAILED when Slack refuses the bot token', async () => {
    await assert.rejects(start({ botToken: 'xoxb-revoked' }), { code: 'SLACK_AUTH_FAILED', message: /invalid_auth/ });
  });
});
