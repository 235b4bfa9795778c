import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Gpt2Config, configJson, makeConfig, presetConfig } from '../../../src/model/config.js';
import {
  type ModelFiles,
  defaultGenerationConfig,
  readHfCheckpoint,
  readModelDir,
  writeModelDir,
} from '../../../src/model/files/model-files.js';
import { readSafetensors, writeSafetensors } from '../../../src/model/files/safetensors.js';
import type { WeightMap } from '../../../src/model/tensor.js';
import { initWeights } from '../../../src/model/files/weights.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-model-files-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const small: Gpt2Config = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 50 });

function modelFiles(config: Gpt2Config, seed = 1): ModelFiles {
  return { config, weights: initWeights(config, seed), generationConfig: defaultGenerationConfig(config) };
}

function assertSameWeights(actual: WeightMap, expected: WeightMap): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    const got = actual.get(name)!;
    assert.deepEqual(got.dims, tensor.dims, name);
    assert.ok(Buffer.from(got.data.buffer, got.data.byteOffset, got.data.byteLength).equals(
      Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength),
    ), `${name} differs`);
  }
}

/** Names of the leftovers an interrupted write could leave beside the target folder. */
async function strays(name: string): Promise<string[]> {
  return (await readdir(root)).filter((entry) => entry.startsWith(`${name}.tmp-`) || entry.startsWith(`${name}.old-`));
}

describe('model directory', () => {
  it('round-trips the tiny preset with its extra files', async () => {
    const config = presetConfig('tiny');
    const files: ModelFiles = { ...modelFiles(config), training: { base: null, steps: 3, loss: [4.1, 3.9] } };
    const dir = join(root, 'tiny');
    const onnxBytes = Uint8Array.from([8, 7, 18, 3]);
    await writeModelDir(dir, files, new Map<string, Uint8Array | string>([
      ['tokenizer.json', '{"model":{}}'],
      ['onnx/model.onnx', onnxBytes],
    ]));

    const read = await readModelDir(dir);
    assert.deepEqual(read.config, config);
    assertSameWeights(read.weights, files.weights);
    assert.equal(read.generationConfig.bos_token_id, 50256);
    assert.equal(read.generationConfig.eos_token_id, 50256);
    assert.deepEqual(read.training, files.training);
    assert.deepEqual(new Uint8Array(await readFile(join(dir, 'onnx/model.onnx'))), onnxBytes);
    assert.equal(await readFile(join(dir, 'tokenizer.json'), 'utf8'), '{"model":{}}');
    assert.deepEqual(await strays('tiny'), []);

    const configFile = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(configFile, JSON.parse(JSON.stringify(configJson(config))));
    const generationFile = JSON.parse(await readFile(join(dir, 'generation_config.json'), 'utf8'));
    assert.deepEqual(Object.keys(generationFile).sort(), ['bos_token_id', 'eos_token_id', 'transformers_version']);
    const { tensors, metadata } = await readSafetensors(join(dir, 'model.safetensors'));
    assert.equal(metadata.format, 'pt');
    assert.ok(tensors.has('h.1.attn.c_attn.weight') && !tensors.has('lm_head.weight'));
  });

  it('refuses an existing folder unless asked to overwrite, then replaces it', async () => {
    const dir = join(root, 'replace');
    await writeModelDir(dir, modelFiles(small, 1));
    await assert.rejects(writeModelDir(dir, modelFiles(small, 2)), { code: 'OPTIONS_INVALID', message: /already exists/ });
    await writeModelDir(dir, modelFiles(small, 2), new Map(), { overwrite: true });
    assertSameWeights((await readModelDir(dir)).weights, initWeights(small, 2));
    assert.deepEqual(await strays('replace'), []);
  });

  it('leaves no temp folder and an existing folder untouched when a write fails', async () => {
    const dir = join(root, 'atomic');
    await writeModelDir(dir, modelFiles(small, 1), new Map([['tokenizer.json', 'old']]));
    const before = await readFile(join(dir, 'model.safetensors'));
    // "onnx" is a folder by the time the second entry is written, so writing it as a file fails.
    const clashing = new Map<string, string>([['onnx/model.onnx', 'graph'], ['onnx', 'not a folder']]);

    await assert.rejects(writeModelDir(dir, modelFiles(small, 2), clashing, { overwrite: true }), { code: 'EEXIST' });
    assert.deepEqual(await strays('atomic'), []);
    assert.deepEqual((await readdir(dir)).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json']);
    assert.ok((await readFile(join(dir, 'model.safetensors'))).equals(before));
    assert.equal(await readFile(join(dir, 'tokenizer.json'), 'utf8'), 'old');

    await assert.rejects(writeModelDir(join(root, 'never'), modelFiles(small), clashing), { code: 'EEXIST' });
    assert.deepEqual(await strays('never'), []);
    assert.ok(!(await readdir(root)).includes('never'));
  });

  it('refuses extra files that escape the folder or replace its own files', async () => {
    for (const path of ['../outside.txt', '/etc/x', 'config.json', './model.safetensors']) {
      await assert.rejects(writeModelDir(join(root, 'escape'), modelFiles(small), new Map([[path, 'x']])), {
        code: 'OPTIONS_INVALID',
      }, path);
    }
    assert.ok(!(await readdir(root)).some((entry) => entry.startsWith('escape')));
  });

  it('refuses to write weights that do not match the config', async () => {
    const files = { ...modelFiles(small), config: makeConfig({ n_layer: 3, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 50 }) };
    await assert.rejects(writeModelDir(join(root, 'unmatched'), files), { code: 'WEIGHTS_MISMATCH', message: /missing h\.2\.ln_1\.weight/ });
  });

  it('reports config and weights that disagree as WEIGHTS_MISMATCH', async () => {
    const dir = join(root, 'disagree');
    await writeModelDir(dir, modelFiles(small));
    const configPath = join(dir, 'config.json');
    const edited = { ...JSON.parse(await readFile(configPath, 'utf8')), n_embd: 16 };
    await writeFile(configPath, JSON.stringify(edited));
    await assert.rejects(readModelDir(dir), {
      code: 'WEIGHTS_MISMATCH',
      message: /model\.safetensors does not match config\.json: wte\.weight is \[50,8\], config\.json needs \[50,16\]/,
    });
  });

  it('reports a missing folder, config or weights as MODEL_NOT_FOUND', async () => {
    const absent = join(root, 'absent');
    await assert.rejects(readModelDir(absent), {
      code: 'MODEL_NOT_FOUND',
      message: `no model at ${absent}; create one with \`tunebot model init --preset tiny --out ${absent}\``,
    });

    const dir = join(root, 'partial');
    await writeModelDir(dir, modelFiles(small));
    await rm(join(dir, 'model.safetensors'));
    await assert.rejects(readModelDir(dir), { code: 'MODEL_NOT_FOUND', message: /model\.safetensors is missing/ });
    await rm(join(dir, 'config.json'));
    await assert.rejects(readModelDir(dir), { code: 'MODEL_NOT_FOUND', message: /config\.json is missing/ });
  });

  it('reports a config.json that is not JSON as CONFIG_INVALID', async () => {
    const dir = join(root, 'bad-config');
    await writeModelDir(dir, modelFiles(small));
    await writeFile(join(dir, 'config.json'), '{"n_embd": ');
    await assert.rejects(readModelDir(dir), { code: 'CONFIG_INVALID', message: /config\.json is not valid JSON/ });
  });

  it('derives the generation config from config.json when the file is missing', async () => {
    const config = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 50, bos_token_id: 3, eos_token_id: 4 });
    const dir = join(root, 'no-generation');
    await writeModelDir(dir, modelFiles(config));
    await rm(join(dir, 'generation_config.json'));
    const read = await readModelDir(dir);
    assert.deepEqual(read.generationConfig, { bos_token_id: 3, eos_token_id: 4 });
    assert.equal(read.training, undefined);
  });
});

describe('Hugging Face checkpoint import', () => {
  /** What GPT2LMHeadModel.save_pretrained writes: transformer.-prefixed names, lm_head, mask buffers. */
  function hfTensors(config: Gpt2Config, weights: WeightMap): WeightMap {
    const tensors: WeightMap = new Map();
    for (const [name, tensor] of weights) tensors.set(`transformer.${name}`, tensor);
    const n = config.n_positions;
    for (let layer = 0; layer < config.n_layer; layer++) {
      tensors.set(`transformer.h.${layer}.attn.bias`, { dims: [1, 1, n, n], data: new Float32Array(n * n).fill(1) });
      tensors.set(`transformer.h.${layer}.attn.masked_bias`, { dims: [], data: Float32Array.from([-1e4]) });
    }
    tensors.set('lm_head.weight', weights.get('wte.weight')!);
    return tensors;
  }

  async function hfFolder(name: string): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...configJson(small), _name_or_path: 'gpt2', n_ctx: 16 }));
    return dir;
  }

  it('imports transformer.-prefixed weights and drops lm_head and the attention buffers', async () => {
    const dir = await hfFolder('hf');
    const weights = initWeights(small, 5);
    await writeSafetensors(join(dir, 'model.safetensors'), hfTensors(small, weights), { format: 'pt' });
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: 50256, eos_token_id: 50256, transformers_version: '4.26.0' }));

    const read = await readHfCheckpoint(dir);
    assert.deepEqual(read.config, small);
    assertSameWeights(read.weights, weights);
    assert.equal(read.generationConfig.transformers_version, '4.26.0');
  });

  it('imports a sharded checkpoint through model.safetensors.index.json', async () => {
    const dir = await hfFolder('hf-sharded');
    const weights = initWeights(small, 6);
    const all = [...hfTensors(small, weights)];
    const shards = [all.slice(0, 10), all.slice(10)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, file), new Map(shard));
      for (const [name] of shard) weightMap[name] = file;
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    assertSameWeights((await readHfCheckpoint(dir)).weights, weights);
  });

  it('explains a checkpoint that has only pytorch_model.bin', async () => {
    const dir = await hfFolder('hf-pickle');
    await writeFile(join(dir, 'pytorch_model.bin'), 'not read');
    await assert.rejects(readHfCheckpoint(dir), { code: 'MODEL_NOT_FOUND', message: /safe_serialization=True/ });
  });

  it('reports a checkpoint whose weights miss a layer as WEIGHTS_MISMATCH', async () => {
    const dir = await hfFolder('hf-short');
    const tensors = hfTensors(small, initWeights(small, 7));
    tensors.delete('transformer.h.1.mlp.c_fc.bias');
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    await assert.rejects(readHfCheckpoint(dir), { code: 'WEIGHTS_MISMATCH', message: /missing h\.1\.mlp\.c_fc\.bias \[32\]/ });
  });

  it('reports a missing folder as MODEL_NOT_FOUND', async () => {
    await assert.rejects(readHfCheckpoint(join(root, 'no-hf')), { code: 'MODEL_NOT_FOUND', message: /no Hugging Face checkpoint/ });
  });
});
