import type { Gpt2Config } from '../config.js';
import type { WeightMap } from '../tensor.js';
import { LORA_TARGETS, type LoraSettings } from './train-graph.js';

/**
 * Folds trained adapters into the base weights: W' = W + (A B) * alpha / r, so the saved
 * model is a plain GPT-2 that every runtime loads. A is [in, r], B is [r, out], W is [in, out].
 */
export function mergeLora(config: Gpt2Config, base: WeightMap, adapters: ReadonlyMap<string, Float32Array>, lora: LoraSettings): WeightMap {
  const merged: WeightMap = new Map(base);
  const scale = lora.alpha / lora.rank;
  for (let layer = 0; layer < config.n_layer; layer++) {
    for (const target of LORA_TARGETS) {
      const prefix = `h.${layer}.${target}`;
      const weight = base.get(`${prefix}.weight`);
      const a = adapters.get(`${prefix}.lora_a`);
      const b = adapters.get(`${prefix}.lora_b`);
      if (!weight || !a || !b) throw new Error(`missing ${prefix} weight or adapters`);
      const [inputs, outputs] = weight.dims;
      const data = Float32Array.from(weight.data);
      for (let i = 0; i < inputs; i++) {
        for (let k = 0; k < lora.rank; k++) {
          const aik = a[i * lora.rank + k] * scale;
          if (aik === 0) continue;
          const row = i * outputs;
          const bRow = k * outputs;
          for (let j = 0; j < outputs; j++) data[row + j] += aik * b[bRow + j];
        }
      }
      merged.set(`${prefix}.weight`, { dims: weight.dims, data });
    }
  }
  return merged;
}
