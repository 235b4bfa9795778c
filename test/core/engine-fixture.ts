import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type App, createApp, SAMPLE_FAQ } from '../../src/core/app.js';
import type { TunebotConfig } from '../../src/core/config.js';
import { scratchConfig } from '../helpers/scratch-config.js';
import type { ConversationEngine } from '../../src/core/conversation/engine.js';
import type { FaqStore } from '../../src/core/faq/faq-store.js';
import { parseFaqDocument } from '../../src/core/faq/formats.js';
import type { Attachment, IncomingMessage } from '../../src/core/conversation/message.js';
import { collectReply, isReplyFile, type ReplyFile, type ReplyPart } from '../../src/core/conversation/reply.js';
import { silentLogger } from '../../src/log.js';
import { initModel } from '../../src/model/files/model-dir.js';

/**
 * A real app (SQLite storage, model registry, model host) in a temporary folder, serving an
 * untrained tiny model: its answers are gibberish, but they stream through the real model path.
 * Generation is greedy and short, so a test's model answers are the same on every run and quick.
 */
export interface EngineFixture {
  readonly app: App;
  readonly engine: ConversationEngine;
  readonly config: TunebotConfig;
  /** The FAQ every local message sees (config faq.scope is "shared"). */
  readonly faq: FaqStore;
  /** Publishes one more model version (a copy of the first), not live. */
  publishVersion(): Promise<string>;
  close(): Promise<void>;
}

export async function startEngineFixture(env: Record<string, string> = {}): Promise<EngineFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'tunebot-engine-'));
  const config = scratchConfig(dir, env);
  const app = await createApp(config, silentLogger);
  const { registry, model } = app.services;
  const template = join(dir, 'template');
  await initModel(template, 'tiny', 0);
  const publishVersion = async () => {
    const version = await registry.nextVersion();
    const staging = join(dir, `staging-${version}`);
    await cp(template, staging, { recursive: true });
    await registry.publish(staging, version);
    return version;
  };
  const first = await publishVersion();
  await registry.use(first);
  await model.swapTo(first);
  return {
    app,
    engine: app.engine,
    config,
    faq: app.services.faqFor(localMessage('setup', '')),
    publishVersion,
    async close() {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function importSampleFaq(faq: FaqStore): Promise<void> {
  await faq.applyImport(parseFaqDocument(new Uint8Array(await readFile(SAMPLE_FAQ)), 'markdown').records, 'replace');
}

export function localMessage(
  userId: string,
  text: string,
  options: { platformAdmin?: boolean; platform?: string; attachments?: Attachment[] } = {},
): IncomingMessage {
  return {
    platform: options.platform ?? 'local',
    scope: { workspace: 'local', channel: 'test' },
    user: { id: userId, displayName: userId },
    text,
    attachments: options.attachments ?? [],
    platformAdmin: options.platformAdmin ?? false,
  };
}

export function attachment(name: string, content: string | Uint8Array): Attachment {
  const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
  return { name, size: bytes.byteLength, bytes: async () => bytes };
}

/** The streamed reply: each text piece as it came, and the whole text. */
export async function collect(replies: AsyncIterable<ReplyPart>): Promise<{ pieces: string[]; text: string }> {
  const pieces: string[] = [];
  for await (const part of replies) if (!isReplyFile(part)) pieces.push(part);
  return { pieces, text: pieces.join('') };
}

/** The reply to one message, as text. */
export async function ask(engine: ConversationEngine, message: IncomingMessage): Promise<string> {
  return (await collectReply(engine.handle(message))).text;
}

/** The reply to one message: its text, and the files it carried. */
export function askForFiles(engine: ConversationEngine, message: IncomingMessage): Promise<{ text: string; files: ReplyFile[] }> {
  return collectReply(engine.handle(message));
}
