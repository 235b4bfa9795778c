import type { ResolvedGenerationOptions } from './options.js';

/**
 * Logits processors, applied in this order as in HF transformers: temperature, then top-k and
 * top-p (which leave -Infinity on the tokens they remove). The repetition penalty, which HF
 * applies first, is in the runtime graph (gpt2-graph.ts), so the rows reach them penalized.
 * None of them needs to know which token a logit belongs to, so they work as well on a row's
 * candidates as on the whole row. Each works in place on one row of logits.
 */
export type LogitsProcessor = (logits: Float32Array) => void;

export function logitsProcessors(options: ResolvedGenerationOptions): LogitsProcessor[] {
  const processors: LogitsProcessor[] = [];
  if (options.greedy) return processors;
  if (options.temperature !== 1) processors.push(temperature(options.temperature));
  if (options.topK > 0) processors.push(topK(options.topK));
  if (options.topP < 1) processors.push(topP(options.topP));
  return processors;
}

export function temperature(value: number): LogitsProcessor {
  return (logits) => {
    for (let i = 0; i < logits.length; i++) logits[i] /= value;
  };
}

/** Keeps the k largest logits (ties at the k-th value are kept too). */
export function topK(k: number): LogitsProcessor {
  return (logits) => {
    if (k >= logits.length) return;
    const threshold = kthLargest(logits, k);
    for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
  };
}

/**
 * Keeps the most likely tokens until their probabilities sum to at least p. The nucleus is
 * usually small, so candidates are taken best-first in growing rounds (64, 256, ...) rather
 * than by sorting the whole vocabulary; the kept set is the same as a full sort would give.
 */
export function topP(p: number): LogitsProcessor {
  return (logits) => {
    const { max, sum } = softmaxNormalizer(logits);
    for (let count = 64; ; count *= 4) {
      const order = topIndices(logits, count);
      let cumulative = 0;
      let keep = 0;
      while (keep < order.length && cumulative < p) cumulative += Math.exp(logits[order[keep++]] - max) / sum;
      if (cumulative >= p || order.length < count) {
        const kept = new Set(order.subarray(0, keep));
        for (let i = 0; i < logits.length; i++) if (!kept.has(i)) logits[i] = -Infinity;
        return;
      }
    }
  };
}

/** max and sum of exp(logit - max) over the finite logits, for probabilities in float64. */
export function softmaxNormalizer(logits: Float32Array): { max: number; sum: number } {
  let max = -Infinity;
  for (const logit of logits) if (logit > max) max = logit;
  let sum = 0;
  for (const logit of logits) if (logit !== -Infinity) sum += Math.exp(logit - max);
  return { max, sum };
}

/** The ids of the `count` largest finite logits, best first, the lower id first on a tie. */
function topIndices(logits: Float32Array, count: number): Uint32Array {
  const finite: number[] = [];
  if (count >= logits.length) {
    for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) finite.push(i);
  } else {
    const threshold = kthLargest(logits, count);
    for (let i = 0; i < logits.length; i++) if (logits[i] >= threshold && logits[i] !== -Infinity) finite.push(i);
  }
  return Uint32Array.from(finite)
    .sort((a, b) => logits[b] - logits[a] || a - b)
    .subarray(0, count);
}

/** The k-th largest value, with a min-heap of size k: O(V log k) instead of sorting V logits. */
function kthLargest(values: Float32Array, k: number): number {
  const heap = new Float64Array(k);
  let size = 0;
  const siftDown = (start: number) => {
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < size && heap[left] < heap[smallest]) smallest = left;
      if (right < size && heap[right] < heap[smallest]) smallest = right;
      if (smallest === i) return;
      [heap[i], heap[smallest]] = [heap[smallest], heap[i]];
      i = smallest;
    }
  };
  for (const value of values) {
    if (size < k) {
      let i = size++;
      heap[i] = value;
      while (i > 0 && heap[(i - 1) >> 1] > heap[i]) {
        const parent = (i - 1) >> 1;
        [heap[i], heap[parent]] = [heap[parent], heap[i]];
        i = parent;
      }
    } else if (value > heap[0]) {
      heap[0] = value;
      siftDown(0);
    }
  }
  return heap[0];
}
