import onnxProto from 'onnx-proto';
import type { AttributeValue, ConstantTensor, ElementType, Graph, ValueInfo } from './graph.js';

const { onnx } = onnxProto;

/** ONNX's number for each element type (TensorProto.DataType), as a Cast's `to` takes it. */
export const ELEMENT_TYPES: Readonly<Record<ElementType, number>> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
};

/** Opset 17 brings LayerNormalization; IR 8 is what ONNX 1.12+ and ONNX Runtime >= 1.12 read. */
export const OPSET_VERSION = 17;
const IR_VERSION = 8;

export interface EncodeOptions {
  readonly producerVersion?: string;
  readonly extraOpsets?: Readonly<Record<string, number>>;
}

/** Serializes a Graph to ONNX ModelProto bytes (initializers inline as raw little-endian data). */
export function encodeModel(graph: Graph, options: EncodeOptions = {}): Uint8Array {
  const opsets = [{ domain: '', version: OPSET_VERSION }];
  for (const [domain, version] of Object.entries(options.extraOpsets ?? {})) opsets.push({ domain, version });
  // Every other domain the nodes use is imported too (version 1 unless extraOpsets says otherwise).
  for (const domain of new Set(graph.nodes.map((node) => node.domain))) {
    if (!opsets.some((opset) => opset.domain === domain)) opsets.push({ domain, version: 1 });
  }
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: 'tunebot',
    producerVersion: options.producerVersion ?? '0.1.0',
    opsetImport: opsets.map((opset) => onnx.OperatorSetIdProto.create(opset)),
    graph: onnx.GraphProto.create({
      name: graph.name,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: [...graph.initializers].map(([name, tensor]) => tensorProto(name, tensor)),
      node: graph.nodes.map((node) =>
        onnx.NodeProto.create({
          opType: node.opType,
          domain: node.domain,
          name: node.name,
          input: [...node.inputs],
          output: [...node.outputs],
          attribute: Object.entries(node.attributes).map(([name, value]) => attribute(name, value)),
        }),
      ),
    }),
  });
  return onnx.ModelProto.encode(model).finish();
}

function valueInfo(info: ValueInfo) {
  return onnx.ValueInfoProto.create({
    name: info.name,
    type: onnx.TypeProto.create({
      tensorType: onnx.TypeProto.Tensor.create({
        elemType: ELEMENT_TYPES[info.type],
        shape: onnx.TensorShapeProto.create({
          dim: info.dims.map((dim) =>
            onnx.TensorShapeProto.Dimension.create(typeof dim === 'number' ? { dimValue: dim } : { dimParam: dim }),
          ),
        }),
      }),
    }),
  });
}

function tensorProto(name: string, tensor: ConstantTensor) {
  return onnx.TensorProto.create({
    name,
    dims: [...tensor.dims],
    dataType: ELEMENT_TYPES[tensor.type],
    rawData: new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength),
  });
}

function attribute(name: string, value: AttributeValue) {
  const { AttributeType } = onnx.AttributeProto;
  if (typeof value === 'string') {
    return onnx.AttributeProto.create({ name, type: AttributeType.STRING, s: new TextEncoder().encode(value) });
  }
  if (typeof value === 'number') {
    return onnx.AttributeProto.create({ name, type: AttributeType.INT, i: value });
  }
  if ('float' in value) {
    return onnx.AttributeProto.create({ name, type: AttributeType.FLOAT, f: value.float });
  }
  return onnx.AttributeProto.create({ name, type: AttributeType.INTS, ints: [...value] });
}
