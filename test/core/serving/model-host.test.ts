import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ModelHost } from '../../../src/core/serving/model-host.js';
import { silentLogger } from '../../../src/log.js';
import { presetConfig } from '../../../src/model/config.js';
import type { GenerationResult } from '../../../src/model/generation/scheduler.js';
import { initModel, saveModel } from '../../../src/model/files/model-dir.js';
import { defaultGenerationConfig } from '../../../src/model/files/model-files.js';
import { initWeights } from '../../../src/model/files/weights.js';

/** One request at a time: during a swap one runs on the old worker and the rest wait in its queue. */
const loadOptions = { executionProvider: 'cpu', logLevel: 'silent', maxBatchSize: 1 } as const;
const LONG = { greedy: true, maxNewTokens: 400 } as const;
const PROMPTS = ['The weather today', 'Our office is'];

let root: string;
/** v1: a tiny model with room for long generations; v2: the tiny preset with another seed. */
let longDir: string;
let otherDir: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-model-host-'));
  longDir = join(root, 'v1');
  otherDir = join(root, 'v2');
  const config = { ...presetConfig('tiny'), n_positions: 1024 };
  await saveModel(longDir, { config, weights: initWeights(config, 1), generationConfig: defaultGenerationConfig(config) });
  await initModel(otherDir, 'tiny', 2);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Live worker threads show up as message ports among the process's active resources. */
function workerPorts(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'MessagePort').length;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(5);
  }
}

interface Run {
  text: string;
  started: boolean;
  settled: boolean;
  result: Promise<GenerationResult>;
  done: Promise<string>;
}

function run(host: ModelHost, prompt: string, options: { greedy: true; maxNewTokens: number }): Run {
  const stream = host.generate(prompt, options);
  assert.ok(stream, 'the host has a model');
  const state: Run = { text: '', started: false, settled: false, result: stream.result, done: Promise.resolve('') };
  void stream.result.finally(() => (state.settled = true)).catch(() => undefined);
  state.done = (async () => {
    for await (const piece of stream) {
      state.started = true;
      state.text += piece;
    }
    return state.text;
  })();
  return state;
}

describe('ModelHost', () => {
  it('has no model and no version before the first swap', () => {
    const host = new ModelHost((version) => join(root, version), loadOptions, silentLogger);
    assert.equal(host.version, null);
    assert.equal(host.info, null);
    assert.equal(host.generate('hello', { maxNewTokens: 1 }), null);
  });

  it('finishes requests in flight on the old model across a swap, then closes it; new requests use the new one', async () => {
    const host = new ModelHost((version) => join(root, version), loadOptions, silentLogger);
    try {
      const loadStarted = performance.now();
      await host.swapTo('v1');
      const loadMs = performance.now() - loadStarted;
      assert.equal(host.version, 'v1');
      assert.equal(host.info?.provider, 'cpu');
      const oneModel = workerPorts();
      // What v1 gives each prompt undisturbed, and how long one request takes here.
      const reference: string[] = [];
      let requestMs = 0;
      for (const prompt of PROMPTS) {
        const started = performance.now();
        reference.push(await run(host, prompt, LONG).done);
        requestMs = Math.max(requestMs, performance.now() - started);
      }
      // Enough requests that the last ones are still queued on v1 when v2 has loaded, on a fast machine or a busy one.
      const count = Math.min(24, Math.max(4, Math.ceil((2 * loadMs) / requestMs) + 1));

      const runs = Array.from({ length: count }, (_, i) => run(host, PROMPTS[i % PROMPTS.length], LONG));
      await until(() => runs[0].started, 'the first request has its first text');
      assert.ok(runs.every((state) => !state.settled), 'the requests were meant to be mid-way when the swap starts');
      await host.swapTo('v2');
      assert.equal(host.version, 'v2');
      assert.ok(runs.some((state) => !state.settled), `the swap was meant to finish while requests still ran on v1 (${count} requests)`);
      assert.equal(workerPorts(), oneModel + 1, 'v1 stays open while its requests run');

      const afterSwap = run(host, PROMPTS[0], { greedy: true, maxNewTokens: 20 });
      const texts = await Promise.all(runs.map((state) => state.done));
      assert.deepEqual(texts, runs.map((_, i) => reference[i % PROMPTS.length]), 'the requests in flight got the whole text of v1');
      for (const state of runs) {
        const result = await state.result;
        assert.equal(result.finishReason, 'length');
        assert.equal(result.generatedTokens, LONG.maxNewTokens);
      }

      const newText = await afterSwap.done;
      assert.equal((await afterSwap.result).finishReason, 'length');
      assert.notEqual(newText, reference[0].slice(0, newText.length), 'a request after the swap ran on v2');
      await until(() => workerPorts() === oneModel, 'v1 closed after its last request');
    } finally {
      await host.close();
    }
  });

  it('closes the old model at once when nothing runs on it, and close() leaves no worker behind', async () => {
    const idle = workerPorts();
    const host = new ModelHost((version) => join(root, version), loadOptions, silentLogger);
    await host.swapTo('v2');
    const oneModel = workerPorts();
    assert.equal(oneModel, idle + 1);
    const greedyText = await run(host, PROMPTS[1], { greedy: true, maxNewTokens: 12 }).done;
    await host.swapTo('v1');
    assert.equal(workerPorts(), oneModel);
    assert.notEqual(await run(host, PROMPTS[1], { greedy: true, maxNewTokens: 12 }).done, greedyText, 'models of different seeds give different greedy text');
    await host.close();
    assert.equal(host.version, null);
    assert.equal(host.generate('hello', { maxNewTokens: 1 }), null);
    await until(() => workerPorts() === idle, 'the last worker exited');
  });
});
