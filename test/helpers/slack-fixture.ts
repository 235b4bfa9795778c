import { readFile } from 'node:fs/promises';
import type { SlackAdapter } from '../../src/adapters/slack/slack-adapter.js';
import { SAMPLE_FAQ } from '../../src/core/app.js';
import type { FaqStore } from '../../src/core/faq/faq-store.js';
import { parseFaqDocument } from '../../src/core/faq/formats.js';
import { createScratchApp, type ScratchApp } from './local-app.js';
import { type ApiCall, type LoopbackSlack, startLoopbackSlack, waitFor } from './loopback-slack.js';

/**
 * The workspace the Slack adapter's tests run in: its tokens and people, the payloads Slack
 * sends from it, and a real app (tiny model, sample FAQ) beside a loopback Slack.
 */
export const BOT_TOKEN = 'xoxb-loopback-bot-token';
export const APP_TOKEN = 'xapp-1-A0LOOP-loopback-app-token';
export const SIGNING_SECRET = 'loopback-signing-secret';
export const TEAM = 'T0LOOP';
export const APP_ID = 'A0LOOP';
export const BOT_USER = 'UTUNEBOT';
export const BOT_ID = 'BTUNEBOT';
export const USERS = {
  UADA: { name: 'ada', isAdmin: true },
  UOWEN: { name: 'owen', isOwner: true },
  UMAX: { name: 'max' },
  UMIA: { name: 'mia' },
  UBEN: { name: 'ben' },
  UZOE: { name: 'zoe' },
};

let messageCount = 0;
/** A fresh Slack message ts. */
export function nextTs(): string {
  messageCount += 1;
  return `1600000000.${String(messageCount).padStart(6, '0')}`;
}

/** The Events API's body for `event`: what HTTP mode posts, and Socket Mode's envelope payload. */
export function eventCallback(event: Record<string, unknown>, eventId: string): Record<string, unknown> {
  return { token: 'legacy-token', team_id: TEAM, api_app_id: APP_ID, event, type: 'event_callback', event_id: eventId, event_time: Math.floor(Date.now() / 1000), authorizations: [{ team_id: TEAM, user_id: BOT_USER, is_bot: true }] };
}

export function directMessage(channel: string, user: string, text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const ts = nextTs();
  return { type: 'message', channel_type: 'im', channel, user, text, ts, event_ts: ts, ...extra };
}

/** `user` writing "@tunebot `text`" in `channel`. */
export function appMention(channel: string, user: string, text: string, extra: Record<string, unknown> = {}): Record<string, unknown> & { ts: string } {
  const ts = nextTs();
  return { type: 'app_mention', user, text: `<@${BOT_USER}> ${text}`, ts, channel, event_ts: ts, ...extra };
}

/** `user` adding (or, `removed`, taking back) the reaction `name` (e.g. "+1") on message `ts` in `channel`, written by `author`. */
export function reaction(user: string, name: string, item: { channel: string; ts: string; author?: string }, removed = false): Record<string, unknown> {
  return { type: removed ? 'reaction_removed' : 'reaction_added', user, reaction: name, item_user: item.author ?? BOT_USER, item: { type: 'message', channel: item.channel, ts: item.ts }, event_ts: nextTs() };
}

export function slashCommand(command: string, text: string, user: string, channel: string, responseUrl: string): Record<string, unknown> {
  return { token: 'legacy-token', team_id: TEAM, team_domain: 'loopback', channel_id: channel, channel_name: 'general', user_id: user, user_name: user.toLowerCase(), command, text, api_app_id: APP_ID, response_url: responseUrl, trigger_id: '1.2.3' };
}

/** chat.postMessage calls into `channel`, oldest first. */
export function postsIn(slack: LoopbackSlack, channel: string): ApiCall[] {
  return slack.callsTo('chat.postMessage').filter((call) => call.args.channel === channel);
}

/** The bot's messages in `channel`: waits for `count` of them, then for the answers under way to finish. */
export async function replyIn(slack: LoopbackSlack, adapter: SlackAdapter, channel: string, count = 1): Promise<ApiCall[]> {
  await waitFor(`${count} message(s) in ${channel}`, () => (postsIn(slack, channel).length >= count ? true : undefined));
  await adapter.idle();
  return postsIn(slack, channel);
}

export interface SlackScratchApp {
  readonly scratch: ScratchApp;
  /** The workspace's FAQ, with the sample FAQ in it. */
  readonly faq: FaqStore;
  /** The sample FAQ's answers, by question. */
  readonly sampleAnswers: ReadonlyMap<string, string>;
}

/** A scratch app (a bot instance's engine) whose FAQ for the workspace holds the sample FAQ. */
export async function createSlackScratchApp(): Promise<SlackScratchApp> {
  const scratch = await createScratchApp();
  const records = parseFaqDocument(new Uint8Array(await readFile(SAMPLE_FAQ)), 'markdown').records;
  const faq = scratch.app.services.faqFor({ platform: 'slack', scope: { workspace: TEAM, channel: 'C0' }, user: { id: 'UADA', displayName: 'ada' }, text: '', attachments: [], platformAdmin: true });
  await faq.applyImport(records, 'merge');
  return { scratch, faq, sampleAnswers: new Map(records.map((record) => [record.question, record.answer])) };
}

/** The loopback Slack of this workspace. */
export function startWorkspaceSlack(): Promise<LoopbackSlack> {
  return startLoopbackSlack({ botToken: BOT_TOKEN, appToken: APP_TOKEN, appId: APP_ID, teamId: TEAM, botUserId: BOT_USER, botId: BOT_ID, users: USERS });
}

export interface SlackWorkspace extends SlackScratchApp {
  readonly slack: LoopbackSlack;
  close(): Promise<void>;
}

/** One bot instance's app and the loopback Slack it talks to. */
export async function startSlackWorkspace(): Promise<SlackWorkspace> {
  const app = await createSlackScratchApp();
  const slack = await startWorkspaceSlack();
  return {
    ...app,
    slack,
    async close() {
      await slack.close();
      await app.scratch.close();
    },
  };
}
