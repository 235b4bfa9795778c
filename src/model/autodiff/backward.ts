import { ModelError } from '../errors.js';
import type { AttributeValue, Graph, GraphBuilder, GraphNode, Value } from '../onnx/graph.js';
import { type InferredDim, ShapeInference } from '../onnx/shape-inference.js';
import { GRADIENT_RULES } from './rules.js';

/**
 * Reverse-mode differentiation of a graph written with GraphBuilder, into more nodes of the
 * same builder (tinygrad's plan): find the values that depend on the parameters, walk the
 * nodes from the last to the first, and for each node whose outputs carry a gradient apply
 * its op's rule from GRADIENT_RULES; contributions to a value used twice are summed.
 */
export interface GradientContext {
  readonly g: GraphBuilder;
  readonly node: GraphNode;
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
  /** The gradient of each output, or null where none flows back. */
  readonly dOutputs: readonly (Value | null)[];
  /** Whether input i depends on a parameter (rules skip the gradients nobody needs). */
  needsGradient(input: number): boolean;
  attribute<T extends AttributeValue>(name: string, fallback: T): T;
  /** A value's dims as far as shape inference knows them (undefined: not even its rank). */
  dims(value: Value): readonly InferredDim[] | undefined;
  /**
   * The shape of `value` as an int64 tensor, built from constants and the graph inputs' dims
   * wherever its dims are known: a Shape node on a forward activation would keep it alive until
   * the backward pass reaches that node (ONNX Runtime frees a value after its last reader), and
   * at 124M those kept only for their shape were 1 MB a token.
   */
  shapeOf(value: Value): Value;
  /**
   * Hands the rule the gradient of input i summed so far from the nodes after this one (null
   * when none): the rule then returns the whole gradient of that input, which lets a scatter
   * add into that sum instead of into zeros and then be summed (three tensors of the input's
   * size fewer; for GPT-2's tied embedding, 150 MB each at 124M).
   */
  takeGradientSoFar(input: number): Value | null;
}

/**
 * Gradients of one node's inputs, in input order, exactly one per input: null where none is
 * needed or defined. Each gradient has its input's shape (buildBackward checks both).
 */
export type GradientRule = (context: GradientContext) => (Value | null)[];

/**
 * Adds the backward pass of `loss` (a scalar) with respect to `parameters` to the builder.
 * Returns each parameter's gradient by name; a parameter the loss does not depend on gets
 * an explicit zero gradient so that callers always receive every gradient. `rules` is the
 * table of gradient rules by operator (tests pass a broken one to see the checks fail).
 */
export function buildBackward(
  g: GraphBuilder,
  loss: Value,
  parameters: readonly Value[],
  rules: Readonly<Record<string, GradientRule>> = GRADIENT_RULES,
): Map<string, Value> {
  const forward = g.graphSoFar;
  const dependsOnParameter = new Set(parameters.map((parameter) => parameter.name));
  for (const node of forward.nodes) {
    if (node.inputs.some((input) => dependsOnParameter.has(input))) for (const output of node.outputs) dependsOnParameter.add(output);
  }
  if (!dependsOnParameter.has(loss.name)) {
    throw new ModelError('MODEL_CORRUPT', `the loss "${loss.name}" does not depend on any parameter`);
  }

  // d loss / d loss = 1, written so it has the loss's type and shape.
  const contributions = new Map<string, Value[]>([[loss.name, [g.op('Add', [g.op('Mul', [loss, g.constFloat(0)]), g.constFloat(1)])]]]);
  const gradientOf = (name: string): Value | null => {
    const parts = contributions.get(name);
    if (!parts || parts.length === 0) return null;
    if (parts.length > 1) {
      const summed = g.op('Sum', parts);
      contributions.set(name, [summed]);
      return summed;
    }
    return parts[0];
  };

  const shapes = new ShapeInference(g);
  const shapeOf = shapeBuilder(g, forward, shapes);
  for (let index = forward.nodes.length - 1; index >= 0; index--) {
    const node = forward.nodes[index];
    if (!node.outputs.some((output) => dependsOnParameter.has(output) && contributions.has(output))) continue;
    const rule = rules[node.opType];
    if (!rule) {
      throw new ModelError('MODEL_CORRUPT', `no gradient rule for ONNX operator ${node.opType} (node ${node.name}); add one to autodiff/rules.ts`);
    }
    const inputs = node.inputs.map((name) => ({ name }));
    const dInputs = g.scoped(`grad/${node.name}`, () =>
      rule({
        g,
        node,
        inputs,
        outputs: node.outputs.map((name) => ({ name })),
        dOutputs: node.outputs.map(gradientOf),
        needsGradient: (i) => dependsOnParameter.has(node.inputs[i]),
        attribute: <T extends AttributeValue>(name: string, fallback: T) => (node.attributes[name] as T | undefined) ?? fallback,
        dims: (value) => shapes.dims(value),
        shapeOf,
        takeGradientSoFar: (i) => {
          const sum = gradientOf(node.inputs[i]);
          contributions.delete(node.inputs[i]);
          return sum;
        },
      }),
    );
    checkRuleResult(node, dInputs, shapes);
    dInputs.forEach((dInput, i) => {
      const name = node.inputs[i];
      if (!dInput || !dependsOnParameter.has(name)) return;
      const parts = contributions.get(name) ?? [];
      parts.push(dInput);
      contributions.set(name, parts);
    });
  }

  const gradients = new Map<string, Value>();
  for (const parameter of parameters) {
    gradients.set(parameter.name, gradientOf(parameter.name) ?? g.op('Mul', [parameter, g.constFloat(0)]));
  }
  return gradients;
}

/**
 * A rule returns one gradient or null per input, and no gradient for an omitted optional
 * input; each gradient has its input's dims wherever shape inference knows both. A rule that
 * breaks this would otherwise yield a wrong sum or a broadcast error far from its cause.
 */
function checkRuleResult(node: GraphNode, dInputs: readonly (Value | null)[], shapes: ShapeInference): void {
  const rule = `the gradient rule for ${node.opType} (node ${node.name})`;
  if (dInputs.length !== node.inputs.length) {
    throw new ModelError(
      'MODEL_CORRUPT',
      `${rule} returned ${dInputs.length} gradients for ${node.inputs.length} inputs [${node.inputs.join(', ')}]; a rule returns one per input, null where none flows`,
    );
  }
  dInputs.forEach((dInput, i) => {
    if (!dInput) return;
    const input = node.inputs[i];
    if (input === '') throw new ModelError('MODEL_CORRUPT', `${rule} returned a gradient for input ${i}, which the node omits`);
    const expected = shapes.dims({ name: input });
    const actual = shapes.dims(dInput);
    if (expected && actual && !compatibleDims(expected, actual)) {
      throw new ModelError(
        'MODEL_CORRUPT',
        `${rule} returned a gradient of dims [${formatDims(actual)}] for input ${i} "${input}" of dims [${formatDims(expected)}]`,
      );
    }
  });
}

/** Same rank, and no two dims that are both known numbers differ (symbolic dims may be equal at run time). */
function compatibleDims(a: readonly InferredDim[], b: readonly InferredDim[]): boolean {
  return a.length === b.length && a.every((dim, i) => typeof dim !== 'number' || typeof b[i] !== 'number' || dim === b[i]);
}

function formatDims(dims: readonly InferredDim[]): string {
  return dims.map((dim) => dim ?? '?').join(', ');
}

/** See GradientContext.shapeOf; the shapes it builds are shared by every rule that asks for the same dims. */
function shapeBuilder(g: GraphBuilder, forward: Graph, shapes: ShapeInference): (value: Value) => Value {
  const symbols = new Map<string, { input: Value; axis: number }>();
  for (const input of forward.inputs) {
    input.dims.forEach((dim, axis) => {
      if (typeof dim === 'string' && !symbols.has(dim)) symbols.set(dim, { input: { name: input.name }, axis });
    });
  }
  const built = new Map<string, Value>();
  return (value) => {
    const dims = shapes.dims(value);
    if (!dims || dims.some((dim) => dim === null || (typeof dim === 'string' && !symbols.has(dim)))) return g.op('Shape', [value]);
    const key = JSON.stringify(dims);
    let shape = built.get(key);
    if (!shape) {
      if (dims.every((dim) => typeof dim === 'number')) {
        shape = g.constInt64(dims as number[], [dims.length]);
      } else {
        const parts = dims.map((dim) => {
          if (typeof dim === 'number') return g.constInt64([dim]);
          // one node (Shape with start and end) where Gather(Shape(...)) would take two
          const { input, axis } = symbols.get(dim as string) as { input: Value; axis: number };
          return g.op('Shape', [input], { attributes: { start: axis, end: axis + 1 } });
        });
        shape = parts.length === 1 ? parts[0] : g.op('Concat', parts, { attributes: { axis: 0 } });
      }
      built.set(key, shape);
    }
    return shape;
  };
}
