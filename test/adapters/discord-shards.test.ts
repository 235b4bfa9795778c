import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { DiscordAdapter, discordAdapterOptions } from '../../src/adapters/discord/discord-adapter.js';
import { DiscordAdapterError } from '../../src/adapters/discord/errors.js';
import type { ChatEngine } from '../../src/core/conversation/adapter.js';
import { type App, createApp } from '../../src/core/app.js';
import { loadConfig } from '../../src/core/config.js';
import type { IncomingMessage } from '../../src/core/conversation/message.js';
import { silentLogger } from '../../src/log.js';
import { type EngineFixture, startEngineFixture } from '../core/engine-fixture.js';
import { LoopbackDiscord, type LoopbackGuild, type StoredMessage, TOKEN } from '../helpers/loopback-discord.js';

const HOURS_QUESTION = 'What are the opening hours?';
const HOURS_ANSWER = 'We are open from 9 to 5, Monday to Friday.';

/** One bot instance on Discord: its adapter, and the messages its engine was handed. */
interface Instance {
  readonly adapter: DiscordAdapter;
  readonly handled: IncomingMessage[];
}

/**
 * An instance's Discord adapter as `tunebot start` builds it: from its TUNEBOT_DISCORD_* variables
 * through the configuration, around `app`'s engine. The engine is the real one; the adapter's view
 * of it notes what it was handed, to tell which instance answered.
 */
async function startInstance(app: App, discord: LoopbackDiscord, env: Record<string, string>): Promise<Instance> {
  const config = loadConfig({ TUNEBOT_DISCORD_TOKEN: TOKEN, TUNEBOT_DISCORD_API_URL: discord.apiUrl, TUNEBOT_DISCORD_SHARDING: 'true', ...env });
  const options = discordAdapterOptions(config.discord, app.engine.commands, pino({ level: 'silent' }));
  assert.ok(options, 'Discord is on with a token');
  const handled: IncomingMessage[] = [];
  const engine: ChatEngine = {
    handle(message) {
      handled.push(message);
      return app.engine.handle(message);
    },
  };
  const adapter = new DiscordAdapter(engine, options);
  await adapter.start();
  return { adapter, handled };
}

/** The shard Discord puts a guild's events on: (guild_id >> 22) % shard_count. */
function shardOf(guild: LoopbackGuild, count: number): [number, number] {
  return [Number((BigInt(guild.id) >> 22n) % BigInt(count)), count];
}

/** A member's mention of the bot in `guild`, and the bot's one reply to it. */
async function askIn(discord: LoopbackDiscord, guild: LoopbackGuild): Promise<{ question: StoredMessage; replies: StoredMessage[] }> {
  const question = discord.sendMessage({ channelId: guild.general.id, author: discord.user('kim'), content: HOURS_QUESTION, mention: true });
  const replies = await discord.waitFor(() => {
    const found = discord.botMessages(guild.general.id).filter((message) => message.replyTo === question.id);
    return found.length > 0 && found;
  }, `a reply in ${guild.id}`);
  return { question, replies };
}

let fixture: EngineFixture;
before(async () => {
  fixture = await startEngineFixture();
  await fixture.faq.add(HOURS_QUESTION, HOURS_ANSWER);
});
after(async () => {
  await fixture.close();
});

/** A mention in `guild` reaches only the connection of its shard and gets exactly one answer. */
async function answeredOnceOnItsShard(discord: LoopbackDiscord, guild: LoopbackDiscord['guilds'][number]): Promise<void> {
  const { question, replies } = await askIn(discord, guild);
  assert.deepEqual(
    replies.map((reply) => reply.content),
    [HOURS_ANSWER],
  );
  assert.deepEqual(discord.receivers('MESSAGE_CREATE', question.id), [shardOf(guild, 2)]);
}

describe('Discord shards over two instances: shard 0 of 2 and shard 1 of 2, two engines over one store', () => {
  let discord: LoopbackDiscord;
  let appB: App;
  let a: Instance;
  let b: Instance;

  before(async () => {
    discord = await LoopbackDiscord.start({ guildCount: 4 });
    // A second app over the first one's config: the same store and model folder, as a second process would have.
    appB = await createApp(fixture.config, silentLogger);
    a = await startInstance(fixture.app, discord, { TUNEBOT_DISCORD_SHARD_IDS: '[0]', TUNEBOT_DISCORD_SHARD_COUNT: '2' });
    b = await startInstance(appB, discord, { TUNEBOT_DISCORD_SHARD_IDS: '[1]', TUNEBOT_DISCORD_SHARD_COUNT: '2' });
  });

  after(async () => {
    await a.adapter.stop();
    await b.adapter.stop();
    await appB.close();
    await discord.close();
  });

  it('identifies each instance with its shard, which gets only its own guilds', () => {
    assert.deepEqual(
      discord.identifies.map((identify) => identify.shard),
      [[0, 2], [1, 2]],
    );
    assert.deepEqual(
      discord.guilds.map((guild) => discord.receivers('GUILD_CREATE', guild.id)),
      discord.guilds.map((guild) => [shardOf(guild, 2)]),
    );
    assert.deepEqual(
      discord.guilds.map((guild) => shardOf(guild, 2)[0]),
      [0, 1, 0, 1],
      'the guilds are spread over both shards',
    );
  });

  it("answers a mention once, from the instance of the guild's shard only", async () => {
    for (const guild of discord.guilds) {
      // B answers from the FAQ entry that A's side added: the store is shared.
      await answeredOnceOnItsShard(discord, guild);
    }
    const workspaces = (instance: Instance) => instance.handled.map((message) => message.scope.workspace);
    assert.deepEqual(workspaces(a), [discord.guilds[0].id, discord.guilds[2].id]);
    assert.deepEqual(workspaces(b), [discord.guilds[1].id, discord.guilds[3].id]);
  });

  it('runs a slash command on the instance of its shard, and registers the commands once for both', async () => {
    const guild = discord.guilds[1];
    const state = discord.interact({ channelId: guild.general.id, user: discord.user('lou'), command: 'help' });
    await discord.waitFor(() => state.original?.content, 'the /help reply');
    assert.deepEqual(discord.receivers('INTERACTION_CREATE', state.id), [[1, 2]]);
    assert.equal(b.handled.at(-1)?.text, '/help');
    assert.equal(discord.callsTo('PUT', /^\/applications\/\d+\/commands$/u).length, 1, 'the second instance found them up to date');
  });

  it("takes direct messages on shard 0's instance, where Discord sends them", async () => {
    const handledByA = a.handled.length;
    const question = discord.sendDirectMessage(discord.user('max'), HOURS_QUESTION);
    assert.equal((await discord.waitFor(() => discord.botMessages(question.channel_id)[0], 'a DM reply')).content, HOURS_ANSWER);
    assert.deepEqual(discord.receivers('MESSAGE_CREATE', question.id), [[0, 2]]);
    assert.equal(a.handled.length, handledByA + 1);
  });
});

describe('Discord shards in one instance: sharding on, no shard ids', () => {
  it('runs every shard GET /gateway/bot recommends, each guild answered on its own shard', async () => {
    const discord = await LoopbackDiscord.start({ guildCount: 2, recommendedShards: 2 });
    const instance = await startInstance(fixture.app, discord, {});
    try {
      assert.ok(discord.callsTo('GET', /^\/gateway\/bot$/u).length >= 1, 'asked Discord for the shard count');
      assert.deepEqual(discord.identifies.map((identify) => identify.shard).sort(), [[0, 2], [1, 2]]);
      for (const guild of discord.guilds) {
        await answeredOnceOnItsShard(discord, guild);
      }
      assert.equal(instance.handled.length, 2);
    } finally {
      await instance.adapter.stop();
      await discord.close();
    }
  });

  it('refuses adapter options with shard ids outside the count or twice over, before connecting', () => {
    // The configuration refuses these at load (test/adapters/discord-config.test.ts); the adapter checks options built in code.
    for (const ids of [[2], [0, 0], []]) {
      assert.throws(
        () => new DiscordAdapter(fixture.app.engine, { token: TOKEN, commands: fixture.app.engine.commands, logger: silentLogger, shards: { ids, count: 2 } }),
        (error: unknown) => error instanceof DiscordAdapterError && error.code === 'DISCORD_OPTIONS_INVALID' && /shard ids/u.test(error.message),
        `[${ids.join(', ')}]`,
      );
    }
  });
});
