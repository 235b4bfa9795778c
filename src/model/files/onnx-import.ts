import { open, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import onnxProto from 'onnx-proto';
import type { Gpt2Config } from '../config.js';
import { ModelError } from '../errors.js';
import { type ModelFiles, readConfig, readGenerationConfig } from './model-files.js';
import { bfloat16ToFloat32, float16ToFloat32 } from './safetensors.js';
import { type WeightMap, elementCount } from '../tensor.js';
import { canonicalWeightNames, checkWeights, weightShapes } from './weights.js';

const { onnx } = onnxProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type Int64 = number | { toNumber(): number };

const DataType = onnx.TensorProto.DataType;
const ELEMENT_BYTES = new Map<number, number>([
  [DataType.FLOAT, 4],
  [DataType.DOUBLE, 8],
  [DataType.FLOAT16, 2],
  [DataType.BFLOAT16, 2],
]);

// Where Optimum and Transformers.js put the graph inside an export folder, in order of preference.
const ONNX_CANDIDATES = ['onnx/model.onnx', 'onnx/decoder_model.onnx', 'model.onnx'];

/**
 * Reads the GPT-2 parameters out of an ONNX export's initializers. Only initializers whose name
 * is a GPT-2 weight (with or without "transformer.") are decoded; exporter constants such as
 * onnx::MatMul_123 (often a transposed copy of wte for lm_head) are skipped.
 */
export async function readOnnxExport(modelOnnxPath: string, config: Gpt2Config): Promise<WeightMap> {
  const model = await decodeModel(modelOnnxPath);
  const expected = weightShapes(config);
  const raw: WeightMap = new Map();
  const external = new ExternalData(dirname(modelOnnxPath), modelOnnxPath);
  try {
    for (const initializer of model.graph?.initializer ?? []) {
      const name = initializer.name ?? '';
      const stripped = name.startsWith('transformer.') ? name.slice('transformer.'.length) : name;
      if (!expected.has(stripped)) continue;
      const dims = (initializer.dims ?? []).map(toNumber);
      raw.set(name, { dims, data: await initializerValues(initializer, dims, modelOnnxPath, external) });
    }
  } finally {
    await external.close();
  }
  const weights = canonicalWeightNames(raw);
  try {
    checkWeights(config, weights, modelOnnxPath);
  } catch (error) {
    const quantized = (model.graph?.initializer ?? []).some((t) => /_quantized$|_scale$/.test(t.name ?? ''));
    if (!quantized || !(error instanceof ModelError)) throw error;
    throw new ModelError('WEIGHTS_MISMATCH', `${error.message}; the export looks quantized, import a float32 or float16 export instead`);
  }
  return weights;
}

/** An export folder: config.json beside onnx/model.onnx, onnx/decoder_model.onnx or model.onnx. */
export async function readOnnxExportDir(dir: string): Promise<ModelFiles> {
  if (!(await exists(dir))) throw new ModelError('MODEL_NOT_FOUND', `no ONNX export at ${dir}`);
  const config = await readConfig(dir);
  let onnxPath: string | undefined;
  for (const candidate of ONNX_CANDIDATES) {
    if (await exists(join(dir, candidate))) {
      onnxPath = join(dir, candidate);
      break;
    }
  }
  if (!onnxPath) {
    throw new ModelError('MODEL_NOT_FOUND', `no ONNX graph in ${dir}; looked for ${ONNX_CANDIDATES.join(', ')}`);
  }
  const weights = await readOnnxExport(onnxPath, config);
  return { config, weights, generationConfig: await readGenerationConfig(dir, config) };
}

async function decodeModel(path: string): Promise<onnxProto.onnx.ModelProto> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ModelError('MODEL_NOT_FOUND', `${path} does not exist`, { cause: error });
    }
    throw error;
  }
  try {
    const model = onnx.ModelProto.decode(bytes);
    if (!model.graph) throw new Error('it has no graph');
    return model;
  } catch (error) {
    throw new ModelError('MODEL_CORRUPT', `${path} is not a valid ONNX model: ${(error as Error).message}`, { cause: error });
  }
}

async function initializerValues(
  tensor: TensorProto,
  dims: number[],
  modelPath: string,
  external: ExternalData,
): Promise<Float32Array> {
  const name = tensor.name ?? '';
  const dataType = tensor.dataType ?? DataType.UNDEFINED;
  const elementBytes = ELEMENT_BYTES.get(dataType);
  if (elementBytes === undefined) {
    const typeName = DataType[dataType] ?? String(dataType);
    throw new ModelError('MODEL_CORRUPT', `${modelPath}: initializer ${name} has data type ${typeName}; GPT-2 weights must be float`);
  }
  const count = elementCount(dims);
  let bytes: Uint8Array | undefined;
  if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    bytes = await external.read(tensor, count * elementBytes);
  } else if (tensor.rawData && tensor.rawData.length > 0) {
    bytes = tensor.rawData;
  }
  if (bytes) {
    if (bytes.length !== count * elementBytes) {
      throw new ModelError(
        'MODEL_CORRUPT',
        `${modelPath}: initializer ${name} holds ${bytes.length} bytes but ${JSON.stringify(dims)} needs ${count * elementBytes}`,
      );
    }
    return widen(dataType, bytes);
  }
  // Typed fields: float_data, double_data, or int32_data holding the 16-bit patterns of FLOAT16/BFLOAT16.
  const values =
    dataType === DataType.FLOAT ? tensor.floatData : dataType === DataType.DOUBLE ? tensor.doubleData : tensor.int32Data;
  if (!values || values.length !== count) {
    throw new ModelError('MODEL_CORRUPT', `${modelPath}: initializer ${name} holds ${values?.length ?? 0} values for shape ${JSON.stringify(dims)}`);
  }
  if (dataType === DataType.FLOAT || dataType === DataType.DOUBLE) return Float32Array.from(values);
  const halves = Uint16Array.from(values);
  return dataType === DataType.FLOAT16 ? float16ToFloat32(halves) : bfloat16ToFloat32(halves);
}

/**
 * Little-endian bytes of one of ELEMENT_BYTES's types to float32. raw_data is a view into the
 * whole .onnx file, so it is copied out rather than viewed, which would keep the file alive.
 */
function widen(dataType: number, bytes: Uint8Array): Float32Array {
  const ownsBuffer = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  // new Uint8Array(view) copies; Buffer#slice, which rawData has, would not.
  const aligned = ownsBuffer ? bytes.buffer : new Uint8Array(bytes).buffer;
  if (dataType === DataType.FLOAT) return new Float32Array(aligned);
  if (dataType === DataType.DOUBLE) return Float32Array.from(new Float64Array(aligned));
  const halves = new Uint16Array(aligned);
  return dataType === DataType.FLOAT16 ? float16ToFloat32(halves) : bfloat16ToFloat32(halves);
}

/** The external data files of one model (model.onnx_data, ...), each opened once. */
class ExternalData {
  private readonly handles = new Map<string, Awaited<ReturnType<typeof open>>>();

  constructor(
    private readonly folder: string,
    private readonly modelPath: string,
  ) {}

  async read(tensor: TensorProto, expectedBytes: number): Promise<Uint8Array> {
    const entries = new Map((tensor.externalData ?? []).map((entry) => [entry.key ?? '', entry.value ?? '']));
    const location = entries.get('location');
    const name = tensor.name ?? '';
    if (!location) throw new ModelError('MODEL_CORRUPT', `${this.modelPath}: initializer ${name} is external but names no location`);
    const normalized = normalize(location);
    if (isAbsolute(location) || normalized === '..' || normalized.startsWith(`..${sep}`)) {
      throw new ModelError('MODEL_CORRUPT', `${this.modelPath}: initializer ${name} points outside the model folder (${location})`);
    }
    const offset = Number(entries.get('offset') ?? 0);
    const length = Number(entries.get('length') ?? expectedBytes);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new ModelError('MODEL_CORRUPT', `${this.modelPath}: initializer ${name} has a bad external offset or length`);
    }
    const path = join(this.folder, normalized);
    const handle = await this.handle(path);
    const bytes = new Uint8Array(length);
    const { bytesRead } = await handle.read(bytes, 0, length, offset);
    if (bytesRead !== length) {
      throw new ModelError('MODEL_CORRUPT', `${path} ends before bytes ${offset}..${offset + length} of initializer ${name}`);
    }
    return bytes;
  }

  private async handle(path: string): Promise<Awaited<ReturnType<typeof open>>> {
    let handle = this.handles.get(path);
    if (!handle) {
      try {
        handle = await open(path, 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new ModelError('MODEL_NOT_FOUND', `${path}, the external data of ${this.modelPath}, is missing`, { cause: error });
        }
        throw error;
      }
      this.handles.set(path, handle);
    }
    return handle;
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.values()].map((handle) => handle.close()));
  }
}

function toNumber(value: Int64): number {
  return typeof value === 'number' ? value : value.toNumber();
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
