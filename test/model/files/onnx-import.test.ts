import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import onnxProto from 'onnx-proto';
import { type Gpt2Config, configJson, makeConfig } from '../../../src/model/config.js';
import { readOnnxExport, readOnnxExportDir } from '../../../src/model/files/onnx-import.js';
import type { Float32Tensor, WeightMap } from '../../../src/model/tensor.js';
import { initWeights } from '../../../src/model/files/weights.js';

const { onnx } = onnxProto;
type TensorProto = onnxProto.onnx.ITensorProto;
const { DataType, DataLocation } = onnx.TensorProto;

const config: Gpt2Config = makeConfig({ n_layer: 2, n_head: 2, n_embd: 8, n_positions: 16, vocab_size: 40 });

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'tunebot-onnx-import-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function bytesOf(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

function transposed(tensor: Float32Tensor): Float32Array {
  const [rows, cols] = tensor.dims;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = tensor.data[r * cols + c];
  return out;
}

/**
 * Initializers as Optimum's GPT-2 export names them: "transformer."-prefixed parameters, biases
 * as float_data and matrices as raw_data here, plus the exporter's own constants.
 */
function optimumInitializers(weights: WeightMap): TensorProto[] {
  const initializers: TensorProto[] = [];
  for (const [name, tensor] of weights) {
    const base = { name: `transformer.${name}`, dims: [...tensor.dims], dataType: DataType.FLOAT };
    initializers.push(name.endsWith('.bias') ? { ...base, floatData: [...tensor.data] } : { ...base, rawData: bytesOf(tensor.data) });
  }
  const wte = weights.get('wte.weight')!;
  initializers.push({ name: 'onnx::MatMul_99', dims: [wte.dims[1], wte.dims[0]], dataType: DataType.FLOAT, rawData: bytesOf(transposed(wte)) });
  initializers.push({ name: 'onnx::Reshape_7', dims: [2], dataType: DataType.INT64, int64Data: [-1, config.n_embd] });
  return initializers;
}

function modelBytes(initializers: TensorProto[]): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'pytorch',
    opsetImport: [{ domain: '', version: 14 }],
    graph: { name: 'main_graph', initializer: initializers },
  });
  return onnx.ModelProto.encode(model).finish();
}

function assertSameWeights(actual: WeightMap, expected: WeightMap): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, tensor] of expected) {
    assert.deepEqual(actual.get(name)!.dims, tensor.dims, name);
    assert.deepEqual(actual.get(name)!.data, tensor.data, name);
  }
}

describe('ONNX export import', () => {
  it('reads raw_data and float_data initializers and skips exporter constants', async () => {
    const weights = initWeights(config, 11);
    const path = join(root, 'plain.onnx');
    await writeFile(path, modelBytes(optimumInitializers(weights)));
    assertSameWeights(await readOnnxExport(path, config), weights);
  });

  it('reads initializers stored in an external data file', async () => {
    const weights = initWeights(config, 12);
    const folder = join(root, 'external');
    await mkdir(folder);
    const chunks: Uint8Array[] = [];
    let offset = 0;
    const initializers = optimumInitializers(weights).map((initializer): TensorProto => {
      if (!initializer.rawData) return initializer;
      const { rawData, ...rest } = initializer;
      // Optimum aligns large tensors in model.onnx_data; the padding must be skipped via offset.
      chunks.push(new Uint8Array(3), rawData);
      offset += 3;
      const entry = {
        ...rest,
        dataLocation: DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: 'model.onnx_data' },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(rawData.length) },
        ],
      };
      offset += rawData.length;
      return entry;
    });
    await writeFile(join(folder, 'model.onnx'), modelBytes(initializers));
    await writeFile(join(folder, 'model.onnx_data'), Buffer.concat(chunks));
    assertSameWeights(await readOnnxExport(join(folder, 'model.onnx'), config), weights);
  });

  it('widens FLOAT16 initializers in raw_data and int32_data', async () => {
    const weights = initWeights(config, 13);
    const initializers = optimumInitializers(weights).map((initializer): TensorProto => {
      if (initializer.name === 'transformer.ln_f.weight') {
        // ln_f.weight is all ones: 0x3C00 in half precision.
        const halves = Buffer.alloc(config.n_embd * 2);
        for (let i = 0; i < config.n_embd; i++) halves.writeUInt16LE(0x3c00, i * 2);
        return { name: initializer.name, dims: initializer.dims, dataType: DataType.FLOAT16, rawData: halves };
      }
      if (initializer.name === 'transformer.ln_f.bias') {
        return { name: initializer.name, dims: initializer.dims, dataType: DataType.FLOAT16, int32Data: Array(config.n_embd).fill(0xc000) };
      }
      return initializer;
    });
    const path = join(root, 'half.onnx');
    await writeFile(path, modelBytes(initializers));
    const read = await readOnnxExport(path, config);
    assert.deepEqual([...read.get('ln_f.weight')!.data], Array(config.n_embd).fill(1));
    assert.deepEqual([...read.get('ln_f.bias')!.data], Array(config.n_embd).fill(-2));
  });

  it('accepts names without the transformer. prefix', async () => {
    const weights = initWeights(config, 14);
    const initializers = optimumInitializers(weights).map((t) => ({ ...t, name: t.name!.replace(/^transformer\./, '') }));
    const path = join(root, 'bare.onnx');
    await writeFile(path, modelBytes(initializers));
    assertSameWeights(await readOnnxExport(path, config), weights);
  });

  it('reports a missing parameter as WEIGHTS_MISMATCH', async () => {
    const initializers = optimumInitializers(initWeights(config, 15)).filter((t) => t.name !== 'transformer.h.1.attn.c_proj.weight');
    const path = join(root, 'short.onnx');
    await writeFile(path, modelBytes(initializers));
    await assert.rejects(readOnnxExport(path, config), {
      code: 'WEIGHTS_MISMATCH',
      message: /short\.onnx does not match config\.json: missing h\.1\.attn\.c_proj\.weight \[8,8\]/,
    });
  });

  it('reports bad bytes as MODEL_CORRUPT', async () => {
    const garbage = join(root, 'garbage.onnx');
    // Field 7 (graph), length 127, then the file ends.
    await writeFile(garbage, Buffer.from([0x3a, 0x7f, 0x01]));
    await assert.rejects(readOnnxExport(garbage, config), { code: 'MODEL_CORRUPT', message: /garbage\.onnx is not a valid ONNX model/ });
    const graphless = join(root, 'graphless.onnx');
    await writeFile(graphless, onnx.ModelProto.encode({ irVersion: 8 }).finish());
    await assert.rejects(readOnnxExport(graphless, config), { code: 'MODEL_CORRUPT', message: /it has no graph/ });

    const initializers = optimumInitializers(initWeights(config, 16)).map((t) =>
      t.name === 'transformer.wpe.weight' ? { ...t, rawData: t.rawData!.subarray(4) } : t,
    );
    const short = join(root, 'short-raw.onnx');
    await writeFile(short, modelBytes(initializers));
    await assert.rejects(readOnnxExport(short, config), {
      code: 'MODEL_CORRUPT',
      message: /initializer transformer\.wpe\.weight holds 508 bytes but \[16,8\] needs 512/,
    });
  });

  it('reports missing or escaping external data', async () => {
    const folder = join(root, 'external-missing');
    await mkdir(folder);
    const external = (location: string): TensorProto[] =>
      optimumInitializers(initWeights(config, 17)).map((t) =>
        t.name === 'transformer.wte.weight'
          ? { name: t.name, dims: t.dims, dataType: t.dataType, dataLocation: DataLocation.EXTERNAL, externalData: [{ key: 'location', value: location }] }
          : t,
      );
    await writeFile(join(folder, 'model.onnx'), modelBytes(external('model.onnx_data')));
    await assert.rejects(readOnnxExport(join(folder, 'model.onnx'), config), { code: 'MODEL_NOT_FOUND', message: /model\.onnx_data/ });
    await writeFile(join(folder, 'model.onnx'), modelBytes(external('../../etc/passwd')));
    await assert.rejects(readOnnxExport(join(folder, 'model.onnx'), config), { code: 'MODEL_CORRUPT', message: /outside the model folder/ });
  });

  it('reads an export folder: config.json beside onnx/model.onnx', async () => {
    const weights = initWeights(config, 18);
    const folder = join(root, 'export');
    await mkdir(join(folder, 'onnx'), { recursive: true });
    await writeFile(join(folder, 'config.json'), JSON.stringify(configJson(config)));
    await writeFile(join(folder, 'onnx', 'decoder_model.onnx'), modelBytes(optimumInitializers(weights)));
    const files = await readOnnxExportDir(folder);
    assert.deepEqual(files.config, config);
    assert.deepEqual(files.generationConfig, { bos_token_id: config.bos_token_id, eos_token_id: config.eos_token_id });
    assertSameWeights(files.weights, weights);
  });

  it('reports an export folder without a graph as MODEL_NOT_FOUND', async () => {
    const folder = join(root, 'export-empty');
    await mkdir(folder);
    await writeFile(join(folder, 'config.json'), JSON.stringify(configJson(config)));
    await assert.rejects(readOnnxExportDir(folder), {
      code: 'MODEL_NOT_FOUND',
      message: /no ONNX graph in .*export-empty; looked for onnx\/model\.onnx, onnx\/decoder_model\.onnx, model\.onnx/,
    });
    await assert.rejects(readOnnxExportDir(join(root, 'nowhere')), { code: 'MODEL_NOT_FOUND', message: /no ONNX export at/ });
  });
});
