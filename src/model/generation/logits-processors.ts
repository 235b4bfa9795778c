import type { ResolvedGenerationOptions } from './options.js';

/**
 * Logits processors, applied in this order as in HF transformers: repetition penalty,
 * temperature, then top-k and top-p (which leave -Infinity on the tokens they remove).
 * Each works in place on one row of logits.
 */
export type LogitsProcessor = (tokens: readonly number[], logits: Float32Array) => void;

export function logitsProcessors(options: ResolvedGenerationOptions): LogitsProcessor[] {
  const processors: LogitsProcessor[] = [];
  if (options.repetitionPenalty !== 1) processors.push(repetitionPenalty(options.repetitionPenalty));
  if (options.greedy) return processors;
  if (options.temperature !== 1) processors.push(temperature(options.temperature));
  if (options.topK > 0) processors.push(topK(options.topK));
  if (options.topP < 1) processors.push(topP(options.topP));
  return processors;
}

/** CTRL's penalty: a seen token's positive logit is divided by the penalty, a negative one multiplied. */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  return (tokens, logits) => {
    for (const token of new Set(tokens)) {
      const logit = logits[token];
      logits[token] = logit > 0 ? logit / penalty : logit * penalty;
    }
  };
}

export function temperature(value: number): LogitsProcessor {
  return (_tokens, logits) => {
    for (let i = 0; i < logits.length; i++) logits[i] /= value;
  };
}

/** Keeps the k largest logits (ties at the k-th value are kept too). */
export function topK(k: number): LogitsProcessor {
  return (_tokens, logits) => {
    if (k >= logits.length) return;
    const threshold = kthLargest(logits, k);
    for (let i = 0; i < logits.length; i++) if (logits[i] < threshold) logits[i] = -Infinity;
  };
}

/** Keeps the most likely tokens until their probabilities sum to at least p. */
export function topP(p: number): LogitsProcessor {
  return (_tokens, logits) => {
    const order = candidatesByLogit(logits);
    const probabilities = softmaxOf(logits, order);
    let cumulative = 0;
    let keep = 0;
    while (keep < order.length && cumulative < p) cumulative += probabilities[keep++];
    for (let i = keep; i < order.length; i++) logits[order[i]] = -Infinity;
  };
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

/** Indices of the finite logits, most likely first. */
export function candidatesByLogit(logits: Float32Array): Uint32Array {
  const finite: number[] = [];
  for (let i = 0; i < logits.length; i++) if (logits[i] !== -Infinity) finite.push(i);
  return Uint32Array.from(finite).sort((a, b) => logits[b] - logits[a] || a - b);
}

/** softmax over logits[order[i]], in float64, in the order given. */
export function softmaxOf(logits: Float32Array, order: Uint32Array): Float64Array {
  const probabilities = new Float64Array(order.length);
  if (order.length === 0) return probabilities;
  const max = logits[order[0]];
  let sum = 0;
  for (let i = 0; i < order.length; i++) {
    probabilities[i] = Math.exp(logits[order[i]] - max);
    sum += probabilities[i];
  }
  for (let i = 0; i < order.length; i++) probabilities[i] /= sum;
  return probabilities;
}
