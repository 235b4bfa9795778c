/** A float32 tensor in row-major order: the unit in which weights are stored, built and fed. */
export interface Float32Tensor {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

/** Weights by their Hugging Face GPT-2 names (wte.weight, h.0.attn.c_attn.weight, ...). */
export type WeightMap = Map<string, Float32Tensor>;

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((product, dim) => product * dim, 1);
}

export function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((dim, i) => dim === b[i]);
}
