import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { discordAdapterOptions } from '../../src/adapters/discord/discord-adapter.js';
import { ConfigError, loadConfig } from '../../src/core/config.js';
import { silentLogger } from '../../src/log.js';

const GUILD = '123456789012345678';

describe('Discord configuration', () => {
  it('leaves Discord off without a token, and takes DISCORD_TOKEN as the token', () => {
    assert.equal(discordAdapterOptions(loadConfig({}).discord, [], silentLogger), null);
    const options = discordAdapterOptions(loadConfig({ DISCORD_TOKEN: 'abc' }).discord, [], silentLogger);
    assert.equal(options?.token, 'abc');
    assert.equal(loadConfig({ DISCORD_TOKEN: 'abc', TUNEBOT_DISCORD_TOKEN: 'wins' }).discord.token, 'wins');
  });

  it('passes guilds, auto-answer channels and the API address through', () => {
    const config = loadConfig({ TUNEBOT_DISCORD_TOKEN: 't', TUNEBOT_DISCORD_GUILD_IDS: `["${GUILD}"]`, TUNEBOT_DISCORD_CHANNELS: `["${GUILD}9"]`, TUNEBOT_DISCORD_API_URL: 'http://127.0.0.1:9/api' });
    const options = discordAdapterOptions(config.discord, [], silentLogger);
    assert.deepEqual([options?.guildIds, options?.autoAnswerChannels, options?.apiUrl, options?.shards], [[GUILD], [`${GUILD}9`], 'http://127.0.0.1:9/api', undefined]);
  });

  it('turns sharding on as every recommended shard, or as some shards of a count', () => {
    const auto = loadConfig({ TUNEBOT_DISCORD_TOKEN: 't', TUNEBOT_DISCORD_SHARDING: 'true' });
    assert.equal(discordAdapterOptions(auto.discord, [], silentLogger)?.shards, 'auto');
    const some = loadConfig({ TUNEBOT_DISCORD_TOKEN: 't', TUNEBOT_DISCORD_SHARDING: 'true', TUNEBOT_DISCORD_SHARD_IDS: '[2,3]', TUNEBOT_DISCORD_SHARD_COUNT: '4' });
    assert.deepEqual(discordAdapterOptions(some.discord, [], silentLogger)?.shards, { ids: [2, 3], count: 4 });
  });

  it('refuses ids that are not Discord ids, and shard ids past the count or twice over, naming the variable', () => {
    assert.throws(() => loadConfig({ TUNEBOT_DISCORD_CHANNELS: '["general"]' }), (error: unknown) => error instanceof ConfigError && /TUNEBOT_DISCORD_CHANNELS_0|discord\.channels/u.test(error.message));
    for (const [ids, count] of [['[4]', '4'], ['[1]', '0'], ['[0,0]', '2']]) {
      assert.throws(
        () => loadConfig({ TUNEBOT_DISCORD_SHARD_IDS: ids, TUNEBOT_DISCORD_SHARD_COUNT: count }),
        (error: unknown) => error instanceof ConfigError && /TUNEBOT_DISCORD_SHARD_IDS.*shard ids must be different and each less than shardCount/u.test(error.message),
        `${ids} of ${count}`,
      );
    }
  });
});
