/**
 * One GPT-2 training step in plain float64 loops, after llm.c's train_gpt2.c: each layer's
 * forward sits above its backward, the backward mirrors the forward's arguments with a d
 * prefix (outputs first), and gradients accumulate with +=. The ONNX training graph is
 * checked against it. Nothing is shared with the graph builder: only the config, the weight
 * names and the tensor types come from src/.
 *
 * Semantics are HF GPT2LMHeadModel in training with dropout off:
 * - positions are 0..T-1 (training batches are right-padded, so real tokens come first);
 * - attention is causal, and keys whose attentionMask is 0 are excluded;
 * - loss = sum over (b, t) of lossMask * -log softmax(logits[b, t])[targets[b, t]], divided by
 *   max(1, sum(lossMask)); an all-zero lossMask gives loss 0 and zero gradients;
 * - logits = ln_f(h) @ wte^T, so wte's gradient is the embedding gather plus the head.
 * The optimizer is PyTorch's AdamW after global-norm clipping (see adamWStep).
 *
 * Layout: B batch rows, T positions, N = B*T, C = n_embd, NH heads of size hs = C/NH,
 * I = MLP width, V = vocab. Conv1D weights are (IN, OUT), so out = inp @ weight + bias.
 */
import { type Gpt2Config, innerSize } from '../../src/model/config.js';
import { ModelError } from '../../src/model/errors.js';
import { type Float32Tensor, elementCount, sameDims } from '../../src/model/tensor.js';
import { weightShapes } from '../../src/model/files/weights.js';

export interface TrainBatch {
  inputIds: number[][]; // (B, T)
  attentionMask: number[][]; // (B, T), 1 = real token
  targets: number[][]; // (B, T), the next token of each position
  lossMask: number[][]; // (B, T), 1 where the position's target counts
}

export interface AdamWSettings {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clipNorm: number; // 0 = no clipping
}

export interface ReferenceOptimizerState {
  step: number; // updates done so far; the next one uses t = step + 1
  m: Map<string, Float64Array>;
  v: Map<string, Float64Array>;
}

/** Float64 tensors by HF weight name, row-major in weightShapes' layouts. */
export type ReferenceWeights = Map<string, Float64Array>;

/** Weights as float32 tensors (a WeightMap) or as ReferenceWeights. */
export type AnyWeights = ReadonlyMap<string, Float32Tensor | Float64Array>;

// ----------------------------------------------------------------------------
// layers: each forward above its backward

// out (N, C) = wte[inp] + wpe[t]; inp (B, T), wte (V, C), wpe (P, C)
function encoderForward(out: Float64Array, inp: number[][], wte: Float64Array, wpe: Float64Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = inp[b][t];
      for (let i = 0; i < C; i++) out[o + i] = wte[ix * C + i] + wpe[t * C + i];
    }
  }
}

// A token id seen several times accumulates into the same wte row.
function encoderBackward(dwte: Float64Array, dwpe: Float64Array, dout: Float64Array, inp: number[][], B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * C;
      const ix = inp[b][t];
      for (let i = 0; i < C; i++) {
        dwte[ix * C + i] += dout[o + i];
        dwpe[t * C + i] += dout[o + i];
      }
    }
  }
}

// out (N, C); mean, rstd (N) are saved for the backward; biased variance as torch.nn.LayerNorm
function layernormForward(
  out: Float64Array, mean: Float64Array, rstd: Float64Array,
  inp: Float64Array, weight: Float64Array, bias: Float64Array, N: number, C: number, eps: number,
): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    let m = 0;
    for (let i = 0; i < C; i++) m += inp[x + i];
    m /= C;
    let variance = 0;
    for (let i = 0; i < C; i++) variance += (inp[x + i] - m) ** 2;
    variance /= C;
    const s = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < C; i++) out[x + i] = (inp[x + i] - m) * s * weight[i] + bias[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

function layernormBackward(
  dinp: Float64Array, dweight: Float64Array, dbias: Float64Array, dout: Float64Array,
  inp: Float64Array, weight: Float64Array, mean: Float64Array, rstd: Float64Array, N: number, C: number,
): void {
  for (let n = 0; n < N; n++) {
    const x = n * C;
    // d(norm) and its two means: the gradient through the mean and through the variance
    let dnormMean = 0;
    let dnormNormMean = 0;
    for (let i = 0; i < C; i++) {
      const norm = (inp[x + i] - mean[n]) * rstd[n];
      const dnorm = weight[i] * dout[x + i];
      dnormMean += dnorm;
      dnormNormMean += dnorm * norm;
    }
    dnormMean /= C;
    dnormNormMean /= C;
    for (let i = 0; i < C; i++) {
      const norm = (inp[x + i] - mean[n]) * rstd[n];
      const dnorm = weight[i] * dout[x + i];
      dbias[i] += dout[x + i];
      dweight[i] += norm * dout[x + i];
      dinp[x + i] += (dnorm - dnormMean - norm * dnormNormMean) * rstd[n];
    }
  }
}

// out (N, OUT) = inp (N, IN) @ weight (IN, OUT) + bias (OUT)
function matmulForward(out: Float64Array, inp: Float64Array, weight: Float64Array, bias: Float64Array, N: number, IN: number, OUT: number): void {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      let sum = bias[o];
      for (let i = 0; i < IN; i++) sum += inp[n * IN + i] * weight[i * OUT + o];
      out[n * OUT + o] = sum;
    }
  }
}

function matmulBackward(
  dinp: Float64Array, dweight: Float64Array, dbias: Float64Array, dout: Float64Array,
  inp: Float64Array, weight: Float64Array, N: number, IN: number, OUT: number,
): void {
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OUT; o++) {
      const d = dout[n * OUT + o];
      dbias[o] += d;
      for (let i = 0; i < IN; i++) {
        dinp[n * IN + i] += d * weight[i * OUT + o];
        dweight[i * OUT + o] += d * inp[n * IN + i];
      }
    }
  }
}

// out (N, C); att (B, NH, T, T) holds the softmax for the backward, 0 at future and masked
// keys; qkv (N, 3C) is [q | k | v] with head h in columns h*hs..(h+1)*hs of each.
// A query with no visible key gets a zero output (only possible under left padding).
function attentionForward(
  out: Float64Array, att: Float64Array, qkv: Float64Array, mask: number[][], B: number, T: number, C: number, NH: number,
): void {
  const hs = C / NH;
  const scale = 1 / Math.sqrt(hs);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const q = (b * T + t) * 3 * C + h * hs;
        const a = ((b * NH + h) * T + t) * T;
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          if (mask[b][t2] === 0) continue;
          const k = (b * T + t2) * 3 * C + C + h * hs;
          let dot = 0;
          for (let i = 0; i < hs; i++) dot += qkv[q + i] * qkv[k + i];
          att[a + t2] = dot * scale;
          max = Math.max(max, att[a + t2]);
        }
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          att[a + t2] = mask[b][t2] === 0 ? 0 : Math.exp(att[a + t2] - max);
          sum += att[a + t2];
        }
        if (sum === 0) continue;
        const o = (b * T + t) * C + h * hs;
        for (let t2 = 0; t2 <= t; t2++) {
          att[a + t2] /= sum;
          const v = (b * T + t2) * 3 * C + 2 * C + h * hs;
          for (let i = 0; i < hs; i++) out[o + i] += att[a + t2] * qkv[v + i];
        }
      }
    }
  }
}

// Masked and future keys have att = 0, so they receive no gradient without a mask here.
function attentionBackward(dqkv: Float64Array, dout: Float64Array, qkv: Float64Array, att: Float64Array, B: number, T: number, C: number, NH: number): void {
  const hs = C / NH;
  const scale = 1 / Math.sqrt(hs);
  const datt = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const q = (b * T + t) * 3 * C + h * hs;
        const a = ((b * NH + h) * T + t) * T;
        const o = (b * T + t) * C + h * hs;
        // out = sum att[t2] v[t2]
        let dattDotAtt = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const v = (b * T + t2) * 3 * C + 2 * C + h * hs;
          datt[t2] = 0;
          for (let i = 0; i < hs; i++) {
            datt[t2] += dout[o + i] * qkv[v + i];
            dqkv[v + i] += att[a + t2] * dout[o + i];
          }
          dattDotAtt += datt[t2] * att[a + t2];
        }
        // softmax: dpreatt[t2] = att[t2] (datt[t2] - sum att datt); preatt = q . k * scale
        for (let t2 = 0; t2 <= t; t2++) {
          const dpreatt = att[a + t2] * (datt[t2] - dattDotAtt);
          const k = (b * T + t2) * 3 * C + C + h * hs;
          for (let i = 0; i < hs; i++) {
            dqkv[q + i] += dpreatt * qkv[k + i] * scale;
            dqkv[k + i] += dpreatt * qkv[q + i] * scale;
          }
        }
      }
    }
  }
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

// HF "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), elementwise over n values
function geluForward(out: Float64Array, inp: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    out[i] = 0.5 * x * (1 + Math.tanh(GELU_SCALE * (x + 0.044715 * x ** 3)));
  }
}

function geluBackward(dinp: Float64Array, dout: Float64Array, inp: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = inp[i];
    const tanhOut = Math.tanh(GELU_SCALE * (x + 0.044715 * x ** 3));
    const sech2 = 1 - tanhOut * tanhOut;
    const localGrad = 0.5 * (1 + tanhOut) + 0.5 * x * sech2 * GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    dinp[i] += localGrad * dout[i];
  }
}

// out = inp1 + inp2, n values
function residualForward(out: Float64Array, inp1: Float64Array, inp2: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = inp1[i] + inp2[i];
}

function residualBackward(dinp1: Float64Array, dinp2: Float64Array, dout: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    dinp1[i] += dout[i];
    dinp2[i] += dout[i];
  }
}

// The tied head: logits (N, V) = inp (N, C) @ wte^T, wte (V, C)
function logitsForward(logits: Float64Array, inp: Float64Array, wte: Float64Array, N: number, C: number, V: number): void {
  for (let n = 0; n < N; n++) {
    for (let v = 0; v < V; v++) {
      let dot = 0;
      for (let i = 0; i < C; i++) dot += inp[n * C + i] * wte[v * C + i];
      logits[n * V + v] = dot;
    }
  }
}

function logitsBackward(dinp: Float64Array, dwte: Float64Array, dlogits: Float64Array, inp: Float64Array, wte: Float64Array, N: number, C: number, V: number): void {
  for (let n = 0; n < N; n++) {
    for (let v = 0; v < V; v++) {
      const d = dlogits[n * V + v];
      for (let i = 0; i < C; i++) {
        dinp[n * C + i] += d * wte[v * C + i];
        dwte[v * C + i] += d * inp[n * C + i];
      }
    }
  }
}

// probs (N, V) = softmax(logits), saved for the backward; returns the masked mean loss
function crossEntropyForward(probs: Float64Array, logits: Float64Array, targets: number[][], lossMask: number[][], T: number, V: number): number {
  let total = 0;
  let count = 0;
  for (let n = 0; n < probs.length / V; n++) {
    const row = n * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[row + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[row + v] - max);
    for (let v = 0; v < V; v++) probs[row + v] = Math.exp(logits[row + v] - max) / sum;
    const b = Math.floor(n / T);
    const t = n % T;
    if (lossMask[b][t] === 0) continue;
    total += max + Math.log(sum) - logits[row + targets[b][t]];
    count++;
  }
  return total / Math.max(1, count);
}

// dlogits (N, V) = (probs - onehot(target)) * lossMask / max(1, sum(lossMask))
function crossEntropyBackward(dlogits: Float64Array, probs: Float64Array, targets: number[][], lossMask: number[][], T: number, V: number): void {
  const denominator = Math.max(1, lossMask.flat().reduce((sum, m) => sum + m, 0));
  for (let n = 0; n < probs.length / V; n++) {
    const b = Math.floor(n / T);
    const t = n % T;
    if (lossMask[b][t] === 0) continue;
    for (let v = 0; v < V; v++) {
      const indicator = v === targets[b][t] ? 1 : 0;
      dlogits[n * V + v] += (probs[n * V + v] - indicator) / denominator;
    }
  }
}

// ----------------------------------------------------------------------------
// the model

interface LayerActivations {
  readonly residual: Float64Array; // (N, C), the block's input
  readonly ln1: Float64Array; // (N, C)
  readonly ln1Mean: Float64Array; // (N)
  readonly ln1Rstd: Float64Array; // (N)
  readonly qkv: Float64Array; // (N, 3C)
  readonly att: Float64Array; // (B, NH, T, T)
  readonly atty: Float64Array; // (N, C)
  readonly residual2: Float64Array; // (N, C) = residual + atty @ c_proj
  readonly ln2: Float64Array; // (N, C)
  readonly ln2Mean: Float64Array; // (N)
  readonly ln2Rstd: Float64Array; // (N)
  readonly fch: Float64Array; // (N, I)
  readonly fchGelu: Float64Array; // (N, I)
}

interface Activations {
  readonly layers: LayerActivations[];
  readonly residual: Float64Array; // (N, C), the last block's output
  readonly lnf: Float64Array; // (N, C)
  readonly lnfMean: Float64Array; // (N)
  readonly lnfRstd: Float64Array; // (N)
  readonly probs: Float64Array; // (N, V)
  readonly loss: number;
}

function gpt2Forward(config: Gpt2Config, w: ReferenceWeights, batch: TrainBatch): Activations {
  const [B, T, C, NH, I, V] = [batch.inputIds.length, batch.inputIds[0].length, config.n_embd, config.n_head, innerSize(config), config.vocab_size];
  const N = B * T;
  const eps = config.layer_norm_epsilon;
  const p = (name: string): Float64Array => w.get(name) as Float64Array;
  let residual = new Float64Array(N * C);
  encoderForward(residual, batch.inputIds, p('wte.weight'), p('wpe.weight'), B, T, C);
  const layers: LayerActivations[] = [];
  for (let l = 0; l < config.n_layer; l++) {
    const h = `h.${l}.`;
    const a: LayerActivations = {
      residual, ln1: new Float64Array(N * C), ln1Mean: new Float64Array(N), ln1Rstd: new Float64Array(N),
      qkv: new Float64Array(N * 3 * C), att: new Float64Array(B * NH * T * T), atty: new Float64Array(N * C),
      residual2: new Float64Array(N * C), ln2: new Float64Array(N * C), ln2Mean: new Float64Array(N), ln2Rstd: new Float64Array(N),
      fch: new Float64Array(N * I), fchGelu: new Float64Array(N * I),
    };
    const attproj = new Float64Array(N * C);
    const fcproj = new Float64Array(N * C);
    const output = new Float64Array(N * C);
    layernormForward(a.ln1, a.ln1Mean, a.ln1Rstd, residual, p(`${h}ln_1.weight`), p(`${h}ln_1.bias`), N, C, eps);
    matmulForward(a.qkv, a.ln1, p(`${h}attn.c_attn.weight`), p(`${h}attn.c_attn.bias`), N, C, 3 * C);
    attentionForward(a.atty, a.att, a.qkv, batch.attentionMask, B, T, C, NH);
    matmulForward(attproj, a.atty, p(`${h}attn.c_proj.weight`), p(`${h}attn.c_proj.bias`), N, C, C);
    residualForward(a.residual2, residual, attproj, N * C);
    layernormForward(a.ln2, a.ln2Mean, a.ln2Rstd, a.residual2, p(`${h}ln_2.weight`), p(`${h}ln_2.bias`), N, C, eps);
    matmulForward(a.fch, a.ln2, p(`${h}mlp.c_fc.weight`), p(`${h}mlp.c_fc.bias`), N, C, I);
    geluForward(a.fchGelu, a.fch, N * I);
    matmulForward(fcproj, a.fchGelu, p(`${h}mlp.c_proj.weight`), p(`${h}mlp.c_proj.bias`), N, I, C);
    residualForward(output, a.residual2, fcproj, N * C);
    layers.push(a);
    residual = output;
  }
  const lnf = new Float64Array(N * C);
  const lnfMean = new Float64Array(N);
  const lnfRstd = new Float64Array(N);
  layernormForward(lnf, lnfMean, lnfRstd, residual, p('ln_f.weight'), p('ln_f.bias'), N, C, eps);
  const logits = new Float64Array(N * V);
  logitsForward(logits, lnf, p('wte.weight'), N, C, V);
  const probs = new Float64Array(N * V);
  const loss = crossEntropyForward(probs, logits, batch.targets, batch.lossMask, T, V);
  return { layers, residual, lnf, lnfMean, lnfRstd, probs, loss };
}

// The forward in reverse; returns the gradients by weight name.
function gpt2Backward(config: Gpt2Config, w: ReferenceWeights, batch: TrainBatch, acts: Activations): ReferenceWeights {
  const [B, T, C, NH, I, V] = [batch.inputIds.length, batch.inputIds[0].length, config.n_embd, config.n_head, innerSize(config), config.vocab_size];
  const N = B * T;
  const p = (name: string): Float64Array => w.get(name) as Float64Array;
  const grads: ReferenceWeights = new Map([...w].map(([name, value]) => [name, new Float64Array(value.length)]));
  const d = (name: string): Float64Array => grads.get(name) as Float64Array;

  const dlogits = new Float64Array(N * V);
  crossEntropyBackward(dlogits, acts.probs, batch.targets, batch.lossMask, T, V);
  const dlnf = new Float64Array(N * C);
  logitsBackward(dlnf, d('wte.weight'), dlogits, acts.lnf, p('wte.weight'), N, C, V);
  let dresidual = new Float64Array(N * C); // gradient of the current block's output
  layernormBackward(dresidual, d('ln_f.weight'), d('ln_f.bias'), dlnf, acts.residual, p('ln_f.weight'), acts.lnfMean, acts.lnfRstd, N, C);

  for (let l = config.n_layer - 1; l >= 0; l--) {
    const h = `h.${l}.`;
    const a = acts.layers[l];
    const dresidual2 = new Float64Array(N * C);
    const dfcproj = new Float64Array(N * C);
    residualBackward(dresidual2, dfcproj, dresidual, N * C);
    const dfchGelu = new Float64Array(N * I);
    matmulBackward(dfchGelu, d(`${h}mlp.c_proj.weight`), d(`${h}mlp.c_proj.bias`), dfcproj, a.fchGelu, p(`${h}mlp.c_proj.weight`), N, I, C);
    const dfch = new Float64Array(N * I);
    geluBackward(dfch, dfchGelu, a.fch, N * I);
    const dln2 = new Float64Array(N * C);
    matmulBackward(dln2, d(`${h}mlp.c_fc.weight`), d(`${h}mlp.c_fc.bias`), dfch, a.ln2, p(`${h}mlp.c_fc.weight`), N, C, I);
    layernormBackward(dresidual2, d(`${h}ln_2.weight`), d(`${h}ln_2.bias`), dln2, a.residual2, p(`${h}ln_2.weight`), a.ln2Mean, a.ln2Rstd, N, C);
    const dinput = new Float64Array(N * C);
    const dattproj = new Float64Array(N * C);
    residualBackward(dinput, dattproj, dresidual2, N * C);
    const datty = new Float64Array(N * C);
    matmulBackward(datty, d(`${h}attn.c_proj.weight`), d(`${h}attn.c_proj.bias`), dattproj, a.atty, p(`${h}attn.c_proj.weight`), N, C, C);
    const dqkv = new Float64Array(N * 3 * C);
    attentionBackward(dqkv, datty, a.qkv, a.att, B, T, C, NH);
    const dln1 = new Float64Array(N * C);
    matmulBackward(dln1, d(`${h}attn.c_attn.weight`), d(`${h}attn.c_attn.bias`), dqkv, a.ln1, p(`${h}attn.c_attn.weight`), N, C, 3 * C);
    layernormBackward(dinput, d(`${h}ln_1.weight`), d(`${h}ln_1.bias`), dln1, a.residual, p(`${h}ln_1.weight`), a.ln1Mean, a.ln1Rstd, N, C);
    dresidual = dinput;
  }
  encoderBackward(d('wte.weight'), d('wpe.weight'), dresidual, batch.inputIds, B, T, C);
  return grads;
}

// ----------------------------------------------------------------------------
// public API

/** The masked mean cross-entropy of the batch and its gradient for every weight, by HF name. */
export function referenceLossAndGradients(config: Gpt2Config, weights: AnyWeights, batch: TrainBatch): { loss: number; gradients: ReferenceWeights } {
  checkBatch(config, batch);
  const w = float64Weights(config, weights);
  const acts = gpt2Forward(config, w, batch);
  return { loss: acts.loss, gradients: gpt2Backward(config, w, batch, acts) };
}

/** The 2-D matmul weights take weight decay; biases, layer norms, wte and wpe do not. */
export function isDecayed(name: string): boolean {
  return /(^|\.)(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/.test(name);
}

export function emptyOptimizerState(config: Gpt2Config): ReferenceOptimizerState {
  const zeros = (): ReferenceWeights => new Map([...weightShapes(config)].map(([name, dims]) => [name, new Float64Array(elementCount(dims))]));
  return { step: 0, m: zeros(), v: zeros() };
}

/**
 * Global-norm clipping, then PyTorch's AdamW (torch.optim.AdamW, foreach off), on any set
 * of named parameters. With t = state.step + 1 and g the clipped gradient:
 *   norm = sqrt(sum of every squared gradient); if clipNorm > 0 and norm > clipNorm, g *= clipNorm / norm
 *     (torch.nn.utils.clip_grad_norm_ divides by norm + 1e-6; the graph and this reference do not)
 *   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *   w = w * (1 - lr * wd)                                 (decayed parameters only, before the step)
 *   w = w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * In exact arithmetic that is w - lr * (mhat / (sqrt(vhat) + eps) + wd * w); the order here is
 * PyTorch's (decay first, then step_size = lr / (1 - b1^t) and denom = sqrt(v) / sqrt(1 - b2^t)
 * + eps), which changes only the rounding. gradNorm is the norm before clipping. Nothing
 * passed in is modified.
 */
export function adamWStep(
  weights: ReferenceWeights, gradients: ReferenceWeights, state: ReferenceOptimizerState, settings: AdamWSettings,
): { gradNorm: number; weights: ReferenceWeights; state: ReferenceOptimizerState } {
  checkSettings(settings);
  const { lr, beta1, beta2, eps, weightDecay, clipNorm } = settings;
  let sumOfSquares = 0;
  for (const [name, g] of gradients) {
    const expected = weights.get(name)?.length;
    for (const [label, tensor] of [['gradient', g], ['m', state.m.get(name)], ['v', state.v.get(name)]] as const) {
      if (tensor?.length !== expected) throw new RangeError(`${label} of ${name} has ${tensor?.length} values, the weight ${expected}`);
    }
    for (const value of g) sumOfSquares += value * value;
  }
  const gradNorm = Math.sqrt(sumOfSquares);
  const clip = clipNorm > 0 && gradNorm > clipNorm ? clipNorm / gradNorm : 1;
  const t = state.step + 1;
  const biasCorrection1 = 1 - beta1 ** t;
  const biasCorrection2 = 1 - beta2 ** t;
  const stepSize = lr / biasCorrection1;
  const next: ReferenceOptimizerState = { step: t, m: new Map(), v: new Map() };
  const updated: ReferenceWeights = new Map();
  for (const [name, weight] of weights) {
    const dweight = gradients.get(name);
    if (dweight === undefined) throw new RangeError(`no gradient for ${name}`);
    const w = Float64Array.from(weight);
    const m = Float64Array.from(state.m.get(name) as Float64Array);
    const v = Float64Array.from(state.v.get(name) as Float64Array);
    const decay = isDecayed(name) ? 1 - lr * weightDecay : 1;
    for (let i = 0; i < w.length; i++) {
      const g = dweight[i] * clip;
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      w[i] *= decay;
      w[i] -= stepSize * (m[i] / (Math.sqrt(v[i]) / Math.sqrt(biasCorrection2) + eps));
    }
    updated.set(name, w);
    next.m.set(name, m);
    next.v.set(name, v);
  }
  return { gradNorm, weights: updated, state: next };
}

/** referenceLossAndGradients, then adamWStep on all weights; the inputs are not modified. */
export function referenceTrainStep(
  config: Gpt2Config, weights: AnyWeights, state: ReferenceOptimizerState, batch: TrainBatch, settings: AdamWSettings,
): { loss: number; gradNorm: number; weights: ReferenceWeights; state: ReferenceOptimizerState } {
  const w = float64Weights(config, weights);
  const { loss, gradients } = referenceLossAndGradients(config, w, batch);
  return { loss, ...adamWStep(w, gradients, state, settings) };
}

/** Copies every weight of the config to float64, checking names and sizes. */
export function float64Weights(config: Gpt2Config, weights: AnyWeights): ReferenceWeights {
  const shapes = weightShapes(config);
  const problems = [...weights.keys()].filter((name) => !shapes.has(name)).map((name) => `unexpected ${name}`);
  const copied: ReferenceWeights = new Map();
  for (const [name, dims] of shapes) {
    const value = weights.get(name);
    const data = value instanceof Float64Array ? value : value?.data;
    if (value === undefined || data === undefined) problems.push(`missing ${name}`);
    else if ((!(value instanceof Float64Array) && !sameDims(value.dims, dims)) || data.length !== elementCount(dims)) {
      problems.push(`${name} holds ${data.length} values, expected shape ${JSON.stringify(dims)}`);
    } else copied.set(name, Float64Array.from(data));
  }
  if (problems.length > 0) throw new ModelError('WEIGHTS_MISMATCH', `reference weights: ${problems.join('; ')}`);
  return copied;
}

function checkBatch(config: Gpt2Config, batch: TrainBatch): void {
  const B = batch.inputIds.length;
  const T = batch.inputIds[0]?.length ?? 0;
  if (B === 0 || T === 0) throw new RangeError('inputIds must hold at least one row and one position');
  if (T > config.n_positions) throw new RangeError(`sequence length ${T} exceeds n_positions ${config.n_positions}`);
  const isId = (value: number): boolean => Number.isInteger(value) && value >= 0 && value < config.vocab_size;
  const isFlag = (value: number): boolean => value === 0 || value === 1;
  const rows: [keyof TrainBatch, (value: number) => boolean, string][] = [
    ['inputIds', isId, `integers in [0, ${config.vocab_size})`],
    ['attentionMask', isFlag, '0 or 1'],
    ['targets', Number.isInteger, 'integers'],
    ['lossMask', isFlag, '0 or 1'],
  ];
  for (const [name, valid, allowed] of rows) {
    const matrix = batch[name];
    if (matrix.length !== B) throw new RangeError(`${name} has ${matrix.length} rows, expected ${B}`);
    matrix.forEach((row, b) => {
      if (row.length !== T) throw new RangeError(`${name}[${b}] has ${row.length} columns, expected ${T}`);
      const bad = row.findIndex((value) => !valid(value));
      if (bad >= 0) throw new RangeError(`${name}[${b}][${bad}] is ${row[bad]}; allowed: ${allowed}`);
    });
  }
  batch.lossMask.forEach((row, b) => row.forEach((counted, t) => {
    if (counted === 0) return;
    if (batch.attentionMask[b][t] === 0) throw new RangeError(`lossMask[${b}][${t}] is 1 at a padding position`);
    if (!isId(batch.targets[b][t])) throw new RangeError(`targets[${b}][${t}] is ${batch.targets[b][t]}; counted targets must be in [0, ${config.vocab_size})`);
  }));
}

function checkSettings(settings: AdamWSettings): void {
  const { lr, beta1, beta2, eps, weightDecay, clipNorm } = settings;
  const problems = [
    !(lr >= 0 && Number.isFinite(lr)) && `lr ${lr} must be finite and >= 0`,
    !(beta1 >= 0 && beta1 < 1) && `beta1 ${beta1} must be in [0, 1)`,
    !(beta2 >= 0 && beta2 < 1) && `beta2 ${beta2} must be in [0, 1)`,
    !(eps > 0) && `eps ${eps} must be > 0`,
    !(weightDecay >= 0) && `weightDecay ${weightDecay} must be >= 0`,
    !(clipNorm >= 0) && `clipNorm ${clipNorm} must be >= 0 (0 = off)`,
  ].filter((problem): problem is string => typeof problem === 'string');
  if (problems.length > 0) throw new RangeError(`AdamW settings: ${problems.join('; ')}`);
}
