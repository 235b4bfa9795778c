import type { Gpt2Config } from '../../src/model/config.js';
import { SeededRandom } from '../../src/model/random.js';
import type { WeightMap } from '../../src/model/tensor.js';
import { initWeights } from '../../src/model/files/weights.js';

/** initWeights leaves biases at 0 and layer-norm gains at 1; give them values that matter. */
export function perturbedWeights(config: Gpt2Config, seed: number): WeightMap {
  const weights = initWeights(config, seed);
  const random = new SeededRandom(seed + 1);
  for (const [name, tensor] of weights) {
    const isGain = /ln_\w+\.weight$/.test(name);
    if (!isGain && !name.endsWith('.bias')) continue;
    for (let i = 0; i < tensor.data.length; i++) tensor.data[i] = (isGain ? 1 : 0) + 0.3 * random.normal();
  }
  return weights;
}
