import { ModelError } from '../errors.js';
import type { Float32Tensor } from '../tensor.js';

/**
 * A plain, inspectable ONNX graph: nodes in topological order, named values, constant
 * tensors. The GPT-2 forward graph is written in these terms so that the training issue
 * can walk the nodes and emit each operator's backward beside it.
 */
export type ElementType = 'float32' | 'float64' | 'int64' | 'bool' | 'uint8';

/** The floating-point type of a graph's activations; tests of gradients build float64 graphs. */
export type FloatType = 'float32' | 'float64';

/** A dimension: a fixed size, or a symbolic name such as "batch_size". */
export type Dim = number | string;

export interface ValueInfo {
  readonly name: string;
  readonly type: ElementType;
  readonly dims: readonly Dim[];
}

export type AttributeValue = number | string | readonly number[] | { readonly float: number };

export interface GraphNode {
  readonly opType: string;
  readonly domain: string;
  readonly name: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

export type ConstantTensor =
  | { readonly type: 'float32'; readonly dims: readonly number[]; readonly data: Float32Array }
  | { readonly type: 'float64'; readonly dims: readonly number[]; readonly data: Float64Array }
  | { readonly type: 'int64'; readonly dims: readonly number[]; readonly data: BigInt64Array }
  | { readonly type: 'uint8'; readonly dims: readonly number[]; readonly data: Uint8Array };

export interface Graph {
  readonly name: string;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly nodes: readonly GraphNode[];
  readonly initializers: ReadonlyMap<string, ConstantTensor>;
}

/** A handle on a value in the graph being built; only its name reaches the file. */
export interface Value {
  readonly name: string;
}

export interface NodeOptions {
  readonly attributes?: Record<string, AttributeValue>;
  readonly domain?: string;
  /** Names a single-output node's value, e.g. after the graph output it is (saves an Identity copy). */
  readonly outputName?: string;
}

/**
 * Builds a Graph. `scope` prefixes node and value names (h.0/attn/...) so a node found in
 * an error message or a profile can be traced to the layer that made it.
 */
export class GraphBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly nodes: GraphNode[] = [];
  private readonly initializers = new Map<string, ConstantTensor>();
  private readonly usedNames = new Set<string>();
  private readonly usedNodeNames = new Set<string>();
  /** Values renamed after the graph output they became: old name -> output name. */
  private readonly renamed = new Map<string, string>();
  private scopes: string[] = [];

  constructor(
    private readonly name: string,
    /** The type of constFloat's constants, so they match the activations they meet. */
    readonly floatType: FloatType = 'float32',
  ) {}

  /** A snapshot of what has been built so far (the autodiff walks it, then keeps building). */
  get graphSoFar(): Graph {
    return this.build();
  }

  get nodeCount(): number {
    return this.nodes.length;
  }

  /** The nodes from index `start` on, in the order they were added (shape inference reads only the new ones). */
  nodesFrom(start: number): readonly GraphNode[] {
    return this.nodes.slice(start);
  }

  /** A graph input's declaration, or undefined when `name` is not a graph input. */
  inputInfo(name: string): ValueInfo | undefined {
    return this.inputs.find((input) => input.name === name);
  }

  /** A constant's tensor, or undefined when `name` is not a constant. */
  constantTensor(name: string): ConstantTensor | undefined {
    return this.initializers.get(name);
  }

  input(name: string, type: ElementType, dims: readonly Dim[]): Value {
    this.claim(name);
    this.inputs.push({ name, type, dims });
    return { name };
  }

  /**
   * Marks `value` as a graph output under `name`. A value some node of this graph produced,
   * not yet an output, is renamed (in that node, in the nodes that read it so far, and in
   * those added later through the old handle): ONNX Runtime then writes it straight into the
   * caller's buffer. Otherwise an Identity node copies it, which at 124M held every gradient
   * twice (500 MB) until the copies ran at the end of the backward pass.
   */
  output(value: Value, name: string, type: ElementType, dims: readonly Dim[]): void {
    const current = this.resolve(value.name);
    if (current !== name) {
      this.claim(name);
      const producer = this.nodes.findIndex((node) => node.outputs.includes(current));
      if (producer >= 0 && !this.outputs.some((output) => output.name === current)) {
        this.nodes.forEach((node, i) => {
          const rename = (names: readonly string[]) => names.map((n) => (n === current ? name : n));
          if (i === producer || node.inputs.includes(current)) this.nodes[i] = { ...node, inputs: rename(node.inputs), outputs: rename(node.outputs) };
        });
        this.renamed.set(current, name);
      } else {
        this.nodes.push({ opType: 'Identity', domain: '', name: `${name}/identity`, inputs: [current], outputs: [name], attributes: {} });
      }
    }
    this.outputs.push({ name, type, dims });
  }

  /** A named weight, stored as an initializer under its own (Hugging Face) name. */
  weight(name: string, tensor: Float32Tensor): Value {
    return this.namedConstant(
      name,
      this.floatType === 'float64'
        ? { type: 'float64', dims: [...tensor.dims], data: Float64Array.from(tensor.data) }
        : { type: 'float32', dims: [...tensor.dims], data: tensor.data },
    );
  }

  /** A named constant of any type, e.g. quantized weights (uint8) and their float32 scales. */
  namedConstant(name: string, tensor: ConstantTensor): Value {
    this.claim(name);
    this.initializers.set(name, tensor);
    return { name };
  }

  constFloat(values: readonly number[] | number, dims?: readonly number[]): Value {
    const list = typeof values === 'number' ? [values] : values;
    const shape = dims ?? (typeof values === 'number' ? [] : [list.length]);
    return this.floatType === 'float64'
      ? this.constant({ type: 'float64', dims: shape, data: Float64Array.from(list) })
      : this.constant({ type: 'float32', dims: shape, data: Float32Array.from(list) });
  }

  constInt64(values: readonly number[] | number, dims?: readonly number[]): Value {
    const list = typeof values === 'number' ? [values] : values;
    const data = BigInt64Array.from(list.map((v) => BigInt(v)));
    return this.constant({ type: 'int64', dims: dims ?? (typeof values === 'number' ? [] : [data.length]), data });
  }

  /** Runs `build` with node names prefixed by `scope`. */
  scoped<T>(scope: string, build: () => T): T {
    this.scopes.push(scope);
    try {
      return build();
    } finally {
      this.scopes.pop();
    }
  }

  /** Adds one node with a single output. */
  op(opType: string, inputs: readonly (Value | null)[], options: NodeOptions = {}): Value {
    return this.opMulti(opType, inputs, 1, options)[0];
  }

  /** Adds one node with `outputCount` outputs. A null input is ONNX's "omitted optional input". */
  opMulti(opType: string, inputs: readonly (Value | null)[], outputCount: number, options: NodeOptions = {}): Value[] {
    const base = this.uniqueName([...this.scopes, opType].join('/'));
    this.usedNodeNames.add(base);
    const outputs = Array.from({ length: outputCount }, (_, i) => (outputCount === 1 ? (options.outputName ?? base) : `${base}:${i}`));
    for (const output of outputs) this.claim(output);
    this.nodes.push({
      opType,
      domain: options.domain ?? '',
      name: base,
      inputs: inputs.map((input) => (input ? this.resolve(input.name) : '')),
      outputs,
      attributes: options.attributes ?? {},
    });
    return outputs.map((name) => ({ name }));
  }

  build(): Graph {
    return {
      name: this.name,
      inputs: [...this.inputs],
      outputs: [...this.outputs],
      nodes: [...this.nodes],
      initializers: new Map(this.initializers),
    };
  }

  /** A value's name now: the graph output's where output() renamed it. */
  private resolve(name: string): string {
    return this.renamed.get(name) ?? name;
  }

  private constant(tensor: ConstantTensor): Value {
    return this.namedConstant(this.uniqueName([...this.scopes, 'const'].join('/')), tensor);
  }

  /** A name free as a value and as a node: a node's outputs are named after it. */
  private uniqueName(base: string): string {
    const taken = (name: string) => this.usedNames.has(name) || this.usedNodeNames.has(name);
    if (!taken(base)) return base;
    for (let i = 1; ; i++) {
      const candidate = `${base}_${i}`;
      if (!taken(candidate)) return candidate;
    }
  }

  private claim(name: string): void {
    if (this.usedNames.has(name)) {
      throw new ModelError('MODEL_CORRUPT', `graph "${this.name}": the value name "${name}" is used twice`);
    }
    this.usedNames.add(name);
  }
}
