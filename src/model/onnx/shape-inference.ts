import type { AttributeValue, GraphBuilder, GraphNode, Value } from './graph.js';

/**
 * Static shapes of the values of a graph being built, as far as they follow from the declared
 * inputs and constants: the autodiff checks each gradient against its input with them.
 *
 * A dim is a number, a symbolic name carried from a declared input ("batch_size"), or null
 * where it is not known before run time. Small int64 tensors (shapes, axes, sizes) also carry
 * their elements, so that Shape -> Gather/Slice/Concat -> Reshape/Expand chains keep their
 * dims. Anything this does not cover is unknown (undefined dims), never a guess: a wrong
 * answer here would reject a correct gradient.
 */
export type InferredDim = number | string | null;

interface Inferred {
  /** undefined: not even the rank is known. */
  readonly dims?: readonly InferredDim[];
  /** The elements of a small 1-D or 0-D int64 tensor, when known. */
  readonly elements?: readonly InferredDim[];
}

/** The most elements of an int64 constant that are tracked (shapes and axes are far smaller). */
const TRACKED_ELEMENTS = 64;

const UNKNOWN: Inferred = {};

interface NodeView {
  readonly node: GraphNode;
  /** What is known of each input; UNKNOWN for an omitted optional input. */
  readonly inputs: readonly Inferred[];
  attribute<T extends AttributeValue>(name: string, fallback: T): T;
}

export class ShapeInference {
  private readonly inferred = new Map<string, Inferred>();
  private nodesSeen = 0;

  constructor(private readonly g: GraphBuilder) {}

  /** The dims of `value` as far as known, or undefined where not even its rank is. */
  dims(value: Value): readonly InferredDim[] | undefined {
    this.catchUp();
    return this.lookup(value.name).dims;
  }

  /** Infers the nodes added since the last call, in order (the builder only appends). */
  private catchUp(): void {
    for (const node of this.g.nodesFrom(this.nodesSeen)) {
      const view: NodeView = {
        node,
        inputs: node.inputs.map((name) => (name === '' ? UNKNOWN : this.lookup(name))),
        attribute: <T extends AttributeValue>(name: string, fallback: T) => (node.attributes[name] as T | undefined) ?? fallback,
      };
      const rule = (node.domain === '' ? OPERATOR_SHAPES : node.domain === 'com.microsoft' ? MICROSOFT_OPERATOR_SHAPES : {})[node.opType];
      const outputs = rule ? [rule(view)].flat() : [];
      node.outputs.forEach((output, i) => this.inferred.set(output, outputs[i] ?? UNKNOWN));
    }
    this.nodesSeen = this.g.nodeCount;
  }

  private lookup(name: string): Inferred {
    const inferred = this.inferred.get(name);
    if (inferred) return inferred;
    const input = this.g.inputInfo(name);
    if (input) return { dims: input.dims };
    const constant = this.g.constantTensor(name);
    if (!constant) return UNKNOWN;
    const tracked = constant.type === 'int64' && constant.dims.length <= 1 && constant.data.length <= TRACKED_ELEMENTS;
    return { dims: constant.dims, elements: tracked ? Array.from(constant.data, Number) : undefined };
  }
}

// ---- dims arithmetic ----------------------------------------------------------------------

function product(dims: readonly InferredDim[]): number | null {
  let total = 1;
  for (const dim of dims) {
    if (typeof dim !== 'number') return null;
    total *= dim;
  }
  return total;
}

/** One output dim of numpy broadcasting; a number other than 1 decides against an unknown. */
function broadcastDim(a: InferredDim, b: InferredDim): InferredDim {
  if (a === 1) return b;
  if (b === 1) return a;
  if (a === b) return a;
  if (typeof a === 'number' && typeof b !== 'number') return a;
  if (typeof b === 'number' && typeof a !== 'number') return b;
  return null;
}

function broadcast(shapes: readonly (readonly InferredDim[] | undefined)[]): InferredDim[] | undefined {
  if (shapes.some((dims) => dims === undefined)) return undefined;
  const known = shapes as readonly (readonly InferredDim[])[];
  const rank = Math.max(...known.map((dims) => dims.length));
  return Array.from({ length: rank }, (_, axis) =>
    known.map((dims) => (axis - rank + dims.length >= 0 ? dims[axis - rank + dims.length] : 1)).reduce(broadcastDim),
  );
}

/** An axis attribute or element, negative ones counted from the end; null where unknown or out of range. */
function normalizeAxis(axis: InferredDim, rank: number): number | null {
  if (typeof axis !== 'number') return null;
  const normalized = axis < 0 ? axis + rank : axis;
  return normalized >= 0 && normalized < rank ? normalized : null;
}

function numbers(elements: readonly InferredDim[] | undefined): number[] | undefined {
  return elements?.every((element) => typeof element === 'number') ? (elements as number[]) : undefined;
}

type CombineDims = (a: InferredDim, b: InferredDim) => InferredDim;

/** Elementwise integer arithmetic on tracked elements (shape sums and differences). */
function combineElements(view: NodeView, combine: CombineDims): readonly InferredDim[] | undefined {
  const [a, b] = view.inputs.map((input) => input.elements);
  if (!a || !b || (a.length !== b.length && a.length !== 1 && b.length !== 1)) return undefined;
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => combine(a[a.length === 1 ? 0 : i], b[b.length === 1 ? 0 : i]));
}

/** Integer arithmetic on dims; a symbol survives adding 0 or multiplying by 1, and minus itself is 0. */
const addDims: CombineDims = (a, b) => (typeof a === 'number' && typeof b === 'number' ? a + b : a === 0 ? b : b === 0 ? a : null);
const subtractDims: CombineDims = (a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : b === 0 ? a : a !== null && a === b ? 0 : null);
const multiplyDims: CombineDims = (a, b) => (typeof a === 'number' && typeof b === 'number' ? a * b : a === 1 ? b : b === 1 ? a : null);

/** How many elements Slice keeps of a dim, with ONNX's clamping of start and end. */
function slicedLength(dim: InferredDim, start: InferredDim, end: InferredDim, step: InferredDim): InferredDim {
  if (typeof dim !== 'number' || typeof start !== 'number' || typeof end !== 'number' || typeof step !== 'number' || step === 0) return null;
  const clamp = (value: number, low: number, high: number) => Math.min(Math.max(value < 0 ? value + dim : value, low), high);
  return step > 0
    ? Math.max(0, Math.ceil((clamp(end, 0, dim) - clamp(start, 0, dim)) / step))
    : Math.max(0, Math.ceil((clamp(start, -1, dim - 1) - clamp(end, -1, dim - 1)) / -step));
}

// ---- operators ----------------------------------------------------------------------------

type ShapeRule = (view: NodeView) => Inferred | Inferred[];

const sameAsFirst: ShapeRule = (view) => ({ dims: view.inputs[0].dims });
const sameValueAsFirst: ShapeRule = (view) => view.inputs[0];
const broadcasting: ShapeRule = (view) => ({ dims: broadcast(view.inputs.map((input) => input.dims)) });
const arithmetic =
  (combine: CombineDims): ShapeRule =>
  (view) => ({ dims: broadcast(view.inputs.map((input) => input.dims)), elements: combineElements(view, combine) });

/** SoftmaxCrossEntropyLoss: a loss per row (reduction none) or one number; its optional log_prob is the scores' shape. */
const softmaxCrossEntropyLoss: ShapeRule = (view) => {
  const loss = { dims: view.attribute<string>('reduction', 'mean') === 'none' ? view.inputs[1].dims : [] };
  return view.node.outputs.length > 1 ? [loss, { dims: view.inputs[0].dims }] : loss;
};

/** Shape(X) with start and end (opset 15): X's dims [start, end), negative ones counted from the end, clamped. */
const shape: ShapeRule = (view) => {
  const { dims } = view.inputs[0];
  const start = view.attribute<number>('start', 0);
  const end = view.attribute<number>('end', Number.MAX_SAFE_INTEGER);
  if (!dims) return start === 0 && end === Number.MAX_SAFE_INTEGER ? { dims: [null] } : UNKNOWN;
  const at = (index: number) => Math.min(Math.max(index < 0 ? index + dims.length : index, 0), dims.length);
  const elements = dims.slice(at(start), Math.max(at(start), at(end)));
  return { dims: [elements.length], elements };
};

/** Reshape(X, shape): 0 copies X's dim (allowzero = 0), -1 takes what is left of X's elements. */
const reshape: ShapeRule = (view) => {
  const [data, target] = view.inputs;
  if (!target.elements) return { dims: typeof target.dims?.[0] === 'number' ? Array(target.dims[0]).fill(null) : undefined };
  if (view.attribute<number>('allowzero', 0) !== 0) return UNKNOWN;
  const resolved = target.elements.map((element, i) => (element === 0 ? (data.dims?.[i] ?? null) : element));
  const inferredIndex = resolved.indexOf(-1);
  if (inferredIndex >= 0) {
    const total = data.dims ? product(data.dims) : null;
    const rest = product(resolved.filter((_, i) => i !== inferredIndex));
    resolved[inferredIndex] = total !== null && rest !== null && rest > 0 ? total / rest : null;
  }
  return { dims: resolved, elements: data.elements };
};

const expand: ShapeRule = (view) => {
  const [data, target] = view.inputs;
  return { dims: target.elements ? broadcast([data.dims, target.elements]) : undefined };
};

const transpose: ShapeRule = (view) => {
  const { dims } = view.inputs[0];
  if (!dims) return UNKNOWN;
  const perm = view.attribute<readonly number[]>('perm', []);
  return { dims: perm.length === 0 ? [...dims].reverse() : perm.map((axis) => dims[axis] ?? null) };
};

const unsqueeze: ShapeRule = (view) => {
  const [data, axes] = view.inputs;
  const listed = numbers(axes.elements);
  if (!data.dims || !listed) return { elements: data.elements };
  const rank = data.dims.length + listed.length;
  const inserted = new Set(listed.map((axis) => normalizeAxis(axis, rank)));
  if (inserted.has(null) || inserted.size !== listed.length) return UNKNOWN;
  const rest = [...data.dims];
  return { dims: Array.from({ length: rank }, (_, axis) => (inserted.has(axis) ? 1 : (rest.shift() as InferredDim))), elements: data.elements };
};

const squeeze: ShapeRule = (view) => {
  const [data, axes = UNKNOWN] = view.inputs;
  if (!data.dims) return { elements: data.elements };
  if (view.node.inputs.length < 2 || view.node.inputs[1] === '') {
    // without axes every dim of 1 goes, which only known dims can tell
    return { dims: data.dims.every((dim) => typeof dim === 'number') ? data.dims.filter((dim) => dim !== 1) : undefined, elements: data.elements };
  }
  const listed = numbers(axes.elements);
  if (!listed) return { elements: data.elements };
  const removed = new Set(listed.map((axis) => normalizeAxis(axis, (data.dims as InferredDim[]).length)));
  return removed.has(null) ? UNKNOWN : { dims: data.dims.filter((_, axis) => !removed.has(axis)), elements: data.elements };
};

const concat: ShapeRule = (view) => {
  const shapes = view.inputs.map((input) => input.dims);
  const elements = view.inputs.every((input) => input.elements && input.dims?.length === 1)
    ? view.inputs.flatMap((input) => input.elements as InferredDim[])
    : undefined;
  if (shapes.some((dims) => dims === undefined)) return { elements };
  const known = shapes as readonly (readonly InferredDim[])[];
  const axis = normalizeAxis(view.attribute<number>('axis', 0), known[0].length);
  if (axis === null) return { elements };
  const along = numbers(known.map((dims) => dims[axis]));
  const sum = along ? along.reduce((a, b) => a + b, 0) : null;
  return { dims: known[0].map((dim, i) => (i === axis ? sum : dim)), elements };
};

const split: ShapeRule = (view) => {
  const [data, sizes = UNKNOWN] = view.inputs;
  const count = view.node.outputs.length;
  if (!data.dims) return Array(count).fill(UNKNOWN);
  const dims = data.dims;
  const axis = normalizeAxis(view.attribute<number>('axis', 0), dims.length);
  if (axis === null) return Array(count).fill(UNKNOWN);
  const whole = dims[axis];
  const listed: InferredDim[] = sizes.elements
    ? [...sizes.elements]
    : Array(count).fill(typeof whole === 'number' && whole % count === 0 ? whole / count : null);
  return listed.map((size) => ({ dims: dims.map((dim, i) => (i === axis ? size : dim)) }));
};

/** Slice(data, starts, ends, axes?, steps?). */
const slice: ShapeRule = (view) => {
  const [data, starts, ends, axesInput = UNKNOWN, stepsInput = UNKNOWN] = view.inputs;
  if (!data.dims) return UNKNOWN;
  const rank = data.dims.length;
  const axes = view.node.inputs[3] ? axesInput.elements : Array.from({ length: starts.elements?.length ?? 0 }, (_, i) => i);
  const steps = view.node.inputs[4] ? stepsInput.elements : axes?.map(() => 1);
  if (!starts.elements || !ends.elements || !axes || !steps) return { dims: data.dims.map(() => null) };
  const dims = [...data.dims];
  let keptElements = data.elements;
  for (let i = 0; i < axes.length; i++) {
    const axis = normalizeAxis(axes[i], rank);
    if (axis === null) return { dims: data.dims.map(() => null) };
    dims[axis] = slicedLength(data.dims[axis], starts.elements[i], ends.elements[i], steps[i]);
    const start = starts.elements[i];
    if (keptElements && typeof start === 'number' && typeof dims[axis] === 'number' && steps[i] === 1) {
      const first = Math.min(Math.max(start < 0 ? start + keptElements.length : start, 0), keptElements.length);
      keptElements = keptElements.slice(first, first + (dims[axis] as number));
    } else {
      keptElements = undefined;
    }
  }
  return { dims, elements: rank === 1 ? keptElements : undefined };
};

/** Gather(data, indices, axis): data's dims with the axis replaced by the indices' dims. */
const gather: ShapeRule = (view) => {
  const [data, indices] = view.inputs;
  if (!data.dims || !indices.dims) return UNKNOWN;
  const axis = normalizeAxis(view.attribute<number>('axis', 0), data.dims.length);
  if (axis === null) return UNKNOWN;
  const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)];
  const picked = numbers(indices.elements);
  const elements =
    data.elements && data.dims.length === 1 && picked
      ? picked.map((index) => (data.elements as InferredDim[])[index < 0 ? index + (data.elements as InferredDim[]).length : index] ?? null)
      : undefined;
  return { dims, elements };
};

const gatherElements: ShapeRule = (view) => ({ dims: view.inputs[1].dims });

/** GatherND (batch_dims 0): indices [..., k] pick slices of X by their first k coordinates. */
const gatherND: ShapeRule = (view) => {
  const [data, indices] = view.inputs;
  const depth = indices.dims?.[indices.dims.length - 1];
  if (!data.dims || !indices.dims || typeof depth !== 'number' || view.attribute<number>('batch_dims', 0) !== 0) return UNKNOWN;
  return { dims: [...indices.dims.slice(0, -1), ...data.dims.slice(depth)] };
};

const nonZero: ShapeRule = (view) => ({ dims: [view.inputs[0].dims?.length ?? null, null] });

/** Range(start, limit, delta); 0 to a symbolic limit by 1 (positions 0..T-1) has the symbol's length. */
const range: ShapeRule = (view) => {
  const [start, limit, delta] = view.inputs.map((input) => input.elements?.[0] ?? null);
  if (start === 0 && delta === 1 && typeof limit === 'string') return { dims: [limit] };
  const known = typeof start === 'number' && typeof limit === 'number' && typeof delta === 'number' && delta !== 0;
  return { dims: [known ? Math.max(0, Math.ceil((limit - start) / delta)) : null] };
};

/** ReduceSum takes its axes as an input since opset 13, the other reductions (opset 17) as an attribute. */
const reduce: ShapeRule = (view) => {
  const { dims } = view.inputs[0];
  const keepdims = view.attribute<number>('keepdims', 1) === 1;
  const axesGiven = view.node.opType === 'ReduceSum' ? Boolean(view.node.inputs[1]) : 'axes' in view.node.attributes;
  const axes = view.node.opType === 'ReduceSum' ? view.inputs[1]?.elements : view.attribute<readonly number[]>('axes', []);
  if (!dims) return UNKNOWN;
  if (!axesGiven || axes?.length === 0) {
    if (view.attribute<number>('noop_with_empty_axes', 0) === 1) return { dims };
    return { dims: keepdims ? dims.map(() => 1) : [] };
  }
  const listed = numbers(axes);
  if (!listed) return { dims: keepdims ? dims.map(() => null) : undefined };
  const reduced = new Set(listed.map((axis) => normalizeAxis(axis, dims.length)));
  if (reduced.has(null)) return UNKNOWN;
  return { dims: keepdims ? dims.map((dim, axis) => (reduced.has(axis) ? 1 : dim)) : dims.filter((_, axis) => !reduced.has(axis)) };
};

const matMul: ShapeRule = (view) => {
  const [a, b] = view.inputs.map((input) => input.dims);
  if (!a || !b || a.length === 0 || b.length === 0) return UNKNOWN;
  if (a.length === 1 && b.length === 1) return { dims: [] };
  if (a.length === 1) return { dims: [...b.slice(0, -2), b[b.length - 1]] };
  if (b.length === 1) return { dims: a.slice(0, -1) };
  const batch = broadcast([a.slice(0, -2), b.slice(0, -2)]) as InferredDim[];
  return { dims: [...batch, a[a.length - 2], b[b.length - 1]] };
};

const gemm: ShapeRule = (view) => {
  const [a, b] = view.inputs.map((input) => input.dims);
  if (a?.length !== 2 || b?.length !== 2) return UNKNOWN;
  const rows = view.attribute<number>('transA', 0) === 1 ? a[1] : a[0];
  const columns = view.attribute<number>('transB', 0) === 1 ? b[0] : b[1];
  return { dims: [rows, columns] };
};

/** Einsum with an explicit output ("...mk,...mn->...kn"); ellipses broadcast. */
const einsum: ShapeRule = (view) => {
  const [terms, output] = view.attribute('equation', '').replace(/\s/g, '').split('->');
  if (output === undefined) return UNKNOWN;
  const letters = new Map<string, InferredDim>();
  const ellipses: (readonly InferredDim[] | undefined)[] = [];
  const inputs = terms.split(',');
  for (let i = 0; i < inputs.length; i++) {
    const dims = view.inputs[i]?.dims;
    if (!dims) return UNKNOWN;
    const [before, after] = inputs[i].includes('...') ? inputs[i].split('...') : [inputs[i], undefined];
    const explicit = before.length + (after?.length ?? 0);
    const ellipsisRank = dims.length - explicit;
    if (ellipsisRank < 0 || (after === undefined && ellipsisRank !== 0)) return UNKNOWN;
    ellipses.push(after === undefined ? [] : dims.slice(before.length, before.length + ellipsisRank));
    const labelled = [...before].map((letter, k) => [letter, dims[k]] as const).concat([...(after ?? '')].map((letter, k) => [letter, dims[before.length + ellipsisRank + k]] as const));
    for (const [letter, dim] of labelled) letters.set(letter, letters.has(letter) ? broadcastDim(letters.get(letter) as InferredDim, dim) : dim);
  }
  const [before, after] = output.includes('...') ? output.split('...') : [output, undefined];
  const ellipsis = after === undefined ? [] : broadcast(ellipses);
  if (!ellipsis) return UNKNOWN;
  const dimOf = (letter: string) => letters.get(letter) ?? null;
  return { dims: [...[...before].map(dimOf), ...ellipsis, ...[...(after ?? '')].map(dimOf)] };
};

const OPERATOR_SHAPES: Readonly<Record<string, ShapeRule>> = {
  Identity: sameValueAsFirst,
  Cast: sameValueAsFirst,
  Neg: sameAsFirst,
  Tanh: sameAsFirst,
  Exp: sameAsFirst,
  Log: sameAsFirst,
  Sqrt: sameAsFirst,
  Reciprocal: sameAsFirst,
  Not: sameAsFirst,
  Softmax: sameAsFirst,
  LogSoftmax: sameAsFirst,
  SoftmaxCrossEntropyLoss: softmaxCrossEntropyLoss,
  ScatterND: sameAsFirst,
  ScatterElements: sameAsFirst,
  Add: arithmetic(addDims),
  Sub: arithmetic(subtractDims),
  Mul: arithmetic(multiplyDims),
  Div: broadcasting,
  Pow: broadcasting,
  Max: broadcasting,
  Min: broadcasting,
  Sum: broadcasting,
  Where: broadcasting,
  Equal: broadcasting,
  Greater: broadcasting,
  Less: broadcasting,
  LessOrEqual: broadcasting,
  GreaterOrEqual: broadcasting,
  And: broadcasting,
  Or: broadcasting,
  Shape: shape,
  Reshape: reshape,
  Expand: expand,
  Transpose: transpose,
  Unsqueeze: unsqueeze,
  Squeeze: squeeze,
  Concat: concat,
  Split: split,
  Slice: slice,
  Gather: gather,
  GatherElements: gatherElements,
  GatherND: gatherND,
  NonZero: nonZero,
  Range: range,
  ReduceSum: reduce,
  ReduceMean: reduce,
  ReduceMax: reduce,
  ReduceSumSquare: reduce,
  MatMul: matMul,
  Gemm: gemm,
  Einsum: einsum,
  LayerNormalization: sameAsFirst,
};

/** ONNX Runtime's contrib operators (domain com.microsoft) that tunebot's graphs use. */
const MICROSOFT_OPERATOR_SHAPES: Readonly<Record<string, ShapeRule>> = {
  FastGelu: sameAsFirst,
};
