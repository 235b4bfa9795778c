import { type Gpt2Config, innerSize } from '../config.js';
import { ModelError } from '../errors.js';
import { SeededRandom } from '../random.js';
import { type Float32Tensor, type WeightMap, elementCount, sameDims } from '../tensor.js';

/**
 * The weights of GPT2Model under Hugging Face's names and layouts. Linear layers are
 * Conv1D, stored [in, out], so x @ W needs no transpose. lm_head is tied to wte.
 */
export function weightShapes(config: Gpt2Config): Map<string, number[]> {
  const c = config.n_embd;
  const inner = innerSize(config);
  const shapes = new Map<string, number[]>([
    ['wte.weight', [config.vocab_size, c]],
    ['wpe.weight', [config.n_positions, c]],
  ]);
  for (let layer = 0; layer < config.n_layer; layer++) {
    const p = `h.${layer}.`;
    shapes.set(`${p}ln_1.weight`, [c]);
    shapes.set(`${p}ln_1.bias`, [c]);
    shapes.set(`${p}attn.c_attn.weight`, [c, 3 * c]);
    shapes.set(`${p}attn.c_attn.bias`, [3 * c]);
    shapes.set(`${p}attn.c_proj.weight`, [c, c]);
    shapes.set(`${p}attn.c_proj.bias`, [c]);
    shapes.set(`${p}ln_2.weight`, [c]);
    shapes.set(`${p}ln_2.bias`, [c]);
    shapes.set(`${p}mlp.c_fc.weight`, [c, inner]);
    shapes.set(`${p}mlp.c_fc.bias`, [inner]);
    shapes.set(`${p}mlp.c_proj.weight`, [inner, c]);
    shapes.set(`${p}mlp.c_proj.bias`, [c]);
  }
  shapes.set('ln_f.weight', [c]);
  shapes.set('ln_f.bias', [c]);
  return shapes;
}

/**
 * GPT-2's initialization: normal(0, initializer_range) for matrices and embeddings, zero
 * biases, unit layer-norm gains, and the residual projections (attn.c_proj, mlp.c_proj)
 * scaled by 1/sqrt(2 * n_layer) so the residual stream's variance does not grow with depth.
 */
export function initWeights(config: Gpt2Config, seed: number): WeightMap {
  const random = new SeededRandom(seed);
  const weights: WeightMap = new Map();
  const residualStd = config.initializer_range / Math.sqrt(2 * config.n_layer);
  for (const [name, dims] of weightShapes(config)) {
    const data = new Float32Array(elementCount(dims));
    if (/ln_\w+\.weight$/.test(name)) {
      data.fill(1);
    } else if (name.endsWith('.weight')) {
      const std = /c_proj\.weight$/.test(name) ? residualStd : config.initializer_range;
      for (let i = 0; i < data.length; i++) data[i] = random.normal() * std;
    }
    weights.set(name, { dims, data });
  }
  return weights;
}

// Buffers that HF checkpoints sometimes carry but that are not parameters of the network.
const IGNORED_WEIGHT = /(^|\.)attn\.(bias|masked_bias)$|^lm_head\.weight$/;

/**
 * Accepts the names that GPT2LMHeadModel.save_pretrained writes ("transformer.h.0...") as
 * well as GPT2Model's ("h.0..."), and drops the attention-mask buffers and the tied lm_head.
 */
export function canonicalWeightNames(raw: WeightMap): WeightMap {
  const weights: WeightMap = new Map();
  for (const [rawName, tensor] of raw) {
    const name = rawName.startsWith('transformer.') ? rawName.slice('transformer.'.length) : rawName;
    if (IGNORED_WEIGHT.test(name)) continue;
    weights.set(name, tensor);
  }
  return weights;
}

/** Throws WEIGHTS_MISMATCH naming every missing, unexpected or misshapen tensor. */
export function checkWeights(config: Gpt2Config, weights: WeightMap, source = 'model.safetensors'): void {
  const problems: string[] = [];
  const expected = weightShapes(config);
  for (const [name, dims] of expected) {
    const tensor = weights.get(name);
    if (!tensor) problems.push(`missing ${name} ${JSON.stringify(dims)}`);
    else if (!sameDims(tensor.dims, dims)) {
      problems.push(`${name} is ${JSON.stringify(tensor.dims)}, config.json needs ${JSON.stringify(dims)}`);
    } else if (tensor.data.length !== elementCount(dims)) {
      problems.push(`${name} holds ${tensor.data.length} values for shape ${JSON.stringify(dims)}`);
    }
  }
  for (const name of weights.keys()) {
    if (!expected.has(name)) problems.push(`unexpected tensor ${name}`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ');
    const more = problems.length > 8 ? ` (and ${problems.length - 8} more)` : '';
    throw new ModelError('WEIGHTS_MISMATCH', `${source} does not match config.json: ${shown}${more}`);
  }
}

export function getWeight(weights: WeightMap, name: string): Float32Tensor {
  const tensor = weights.get(name);
  if (!tensor) throw new ModelError('WEIGHTS_MISMATCH', `missing weight ${name}`);
  return tensor;
}
