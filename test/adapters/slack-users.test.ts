import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { webApi } from '@slack/bolt';
import { SlackUsers } from '../../src/adapters/slack/slack-users.js';
import { silentLogger } from '../../src/log.js';
import { type LoopbackSlack, startLoopbackSlack } from '../helpers/loopback-slack.js';

const TOKEN = 'xoxb-users-test';
const NAMES = ['ada', 'ben', 'cy', 'dee', 'eve'];

describe('SlackUsers: users.info through the real WebClient against a loopback Slack', () => {
  let slack: LoopbackSlack;
  let client: webApi.WebClient;

  before(async () => {
    const users = Object.fromEntries(NAMES.map((name) => [`U${name.toUpperCase()}`, { name, isAdmin: name === 'ada' }]));
    slack = await startLoopbackSlack({ botToken: TOKEN, teamId: 'T1', botUserId: 'UBOT', botId: 'B1', users });
    client = new webApi.WebClient(TOKEN, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  });

  after(async () => {
    await slack.close();
  });

  it('caches at most maxUsers users, the least recently looked up leaving first', async () => {
    const users = new SlackUsers(client, silentLogger, 60_000, 3);
    for (const name of NAMES) assert.equal((await users.lookup(`U${name.toUpperCase()}`)).displayName, name);
    assert.equal(users.size, 3);
    const callsBefore = slack.callsTo('users.info').length;
    assert.deepEqual(await users.lookup('UEVE'), { displayName: 'eve', isAdmin: false });
    assert.equal(slack.callsTo('users.info').length, callsBefore, 'a cached user costs no call');
    assert.deepEqual(await users.lookup('UADA'), { displayName: 'ada', isAdmin: true });
    assert.equal(slack.callsTo('users.info').length, callsBefore + 1, 'a user dropped from the cache is looked up again');
    assert.equal(users.size, 3);
  });
});
