import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { type Command, CommandUsageError } from '../../src/core/commands/command.js';
import { ConversationEngine } from '../../src/core/conversation/engine.js';
import { SOMETHING_WENT_WRONG } from '../../src/core/conversation/error-reply.js';
import { StorageError } from '../../src/core/storage/storage-error.js';
import { ask, type EngineFixture, localMessage, startEngineFixture } from './engine-fixture.js';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly command?: string;
  readonly err?: { readonly type: string; readonly message: string; readonly stack: string };
}

describe('a command that fails: coded errors are told, bugs are logged and answered generically', () => {
  let fixture: EngineFixture;
  let engine: ConversationEngine;
  const lines: LogLine[] = [];
  /** What /explode, a command beside the real ones, throws when it runs. */
  let failure: Error = new Error('unset');

  before(async () => {
    fixture = await startEngineFixture();
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
    const explode: Command = {
      words: ['explode'],
      usage: 'explode',
      summary: 'fails, for this test',
      admin: false,
      async run() {
        throw failure;
      },
    };
    engine = new ConversationEngine({ ...fixture.app.services, logger }, [...fixture.engine.commands, explode]);
  });

  after(async () => {
    await fixture?.close();
  });

  const run = (error: Error) => {
    failure = error;
    return ask(engine, localMessage('eve', '/explode'));
  };

  it('a programmer error (a RangeError from a metrics label) gets the generic reply; its message and stack go to the log only', async () => {
    const reply = await run(new RangeError('tunebot_messages_total takes the labels path (strings); got route'));
    assert.equal(reply, SOMETHING_WENT_WRONG);
    assert.doesNotMatch(reply, /route|labels/u);
    const logged = lines.filter((line) => line.msg === 'a command failed');
    assert.equal(logged.length, 1);
    assert.equal(logged[0].level, 50);
    assert.equal(logged[0].command, 'explode');
    assert.equal(logged[0].err?.type, 'RangeError');
    assert.match(logged[0].err?.stack ?? '', /labels path .*\n\s+at /u);
  });

  it("a coded error's message is the reply, and it is not logged as a failure", async () => {
    lines.length = 0;
    assert.equal(await run(new StorageError('STORAGE_UNAVAILABLE', 'cannot reach Redis storage redis://127.0.0.1:1: ECONNREFUSED; start Redis there')), 'Could not do that: cannot reach Redis storage redis://127.0.0.1:1: ECONNREFUSED; start Redis there');
    assert.deepEqual(lines.filter((line) => line.level >= 50), []);
  });

  it('a usage error is answered with the usage line', async () => {
    assert.equal(await run(new CommandUsageError('explode takes no arguments')), 'explode takes no arguments\nUsage: /explode');
  });
});
