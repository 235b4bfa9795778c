import { ModelError } from './errors.js';

/** The GPT2Config fields that shape the network, as Hugging Face writes them in config.json. */
export interface Gpt2Config {
  readonly model_type: 'gpt2';
  readonly vocab_size: number;
  readonly n_positions: number;
  readonly n_embd: number;
  readonly n_layer: number;
  readonly n_head: number;
  readonly n_inner: number | null;
  readonly layer_norm_epsilon: number;
  readonly activation_function: 'gelu_new';
  readonly initializer_range: number;
  readonly bos_token_id: number;
  readonly eos_token_id: number;
  readonly tie_word_embeddings: boolean;
}

export const GPT2_VOCAB_SIZE = 50257;
export const END_OF_TEXT_ID = 50256;

export type PresetName = 'tiny' | 'gpt2' | 'gpt2-medium';

const PRESET_SHAPES: Record<PresetName, Pick<Gpt2Config, 'n_layer' | 'n_head' | 'n_embd' | 'n_positions'>> = {
  // Small enough for the tests to train in seconds, with GPT-2's real vocabulary.
  tiny: { n_layer: 2, n_head: 4, n_embd: 64, n_positions: 128 },
  gpt2: { n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024 },
  'gpt2-medium': { n_layer: 24, n_head: 16, n_embd: 1024, n_positions: 1024 },
};

export const PRESET_NAMES = Object.keys(PRESET_SHAPES) as PresetName[];

export function presetConfig(name: PresetName): Gpt2Config {
  const shape = PRESET_SHAPES[name];
  if (!shape) {
    throw new ModelError('OPTIONS_INVALID', `unknown preset "${name}"; use one of: ${PRESET_NAMES.join(', ')}`);
  }
  return makeConfig(shape);
}

export function makeConfig(
  shape: Pick<Gpt2Config, 'n_layer' | 'n_head' | 'n_embd' | 'n_positions'> & Partial<Gpt2Config>,
): Gpt2Config {
  return validateConfig({
    model_type: 'gpt2',
    vocab_size: GPT2_VOCAB_SIZE,
    n_inner: null,
    layer_norm_epsilon: 1e-5,
    activation_function: 'gelu_new',
    initializer_range: 0.02,
    bos_token_id: END_OF_TEXT_ID,
    eos_token_id: END_OF_TEXT_ID,
    tie_word_embeddings: true,
    ...shape,
  });
}

/** Width of the MLP's hidden layer: n_inner, or 4 * n_embd when config.json leaves it null. */
export function innerSize(config: Gpt2Config): number {
  return config.n_inner ?? 4 * config.n_embd;
}

export function headSize(config: Gpt2Config): number {
  return config.n_embd / config.n_head;
}

/**
 * Checks a parsed config.json. Hugging Face files carry many more fields (architectures,
 * task_specific_params, ...); those are kept by the caller but not needed here.
 */
export function validateConfig(raw: unknown, source = 'config.json'): Gpt2Config {
  if (typeof raw !== 'object' || raw === null) {
    throw new ModelError('CONFIG_INVALID', `${source}: expected a JSON object`);
  }
  const fields = raw as Record<string, unknown>;
  const positiveInt = (name: string): number => {
    const value = fields[name];
    if (!Number.isInteger(value) || (value as number) <= 0) {
      throw new ModelError('CONFIG_INVALID', `${source}: "${name}" must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  if (fields.model_type !== undefined && fields.model_type !== 'gpt2') {
    throw new ModelError('CONFIG_INVALID', `${source}: model_type is "${String(fields.model_type)}"; only "gpt2" is supported`);
  }
  const activation = fields.activation_function ?? 'gelu_new';
  if (activation !== 'gelu_new') {
    throw new ModelError('CONFIG_INVALID', `${source}: activation_function "${String(activation)}" is not supported; use "gelu_new"`);
  }
  const n_embd = positiveInt('n_embd');
  const n_head = positiveInt('n_head');
  if (n_embd % n_head !== 0) {
    throw new ModelError('CONFIG_INVALID', `${source}: n_embd (${n_embd}) must be divisible by n_head (${n_head})`);
  }
  const nInner = fields.n_inner;
  if (nInner !== undefined && nInner !== null && (!Number.isInteger(nInner) || (nInner as number) <= 0)) {
    throw new ModelError('CONFIG_INVALID', `${source}: "n_inner" must be null or a positive integer`);
  }
  const epsilon = fields.layer_norm_epsilon ?? 1e-5;
  if (typeof epsilon !== 'number' || !(epsilon > 0)) {
    throw new ModelError('CONFIG_INVALID', `${source}: "layer_norm_epsilon" must be a positive number`);
  }
  if (fields.tie_word_embeddings === false) {
    throw new ModelError('CONFIG_INVALID', `${source}: untied lm_head weights are not supported (tie_word_embeddings must be true)`);
  }
  return {
    model_type: 'gpt2',
    vocab_size: positiveInt('vocab_size'),
    n_positions: positiveInt('n_positions'),
    n_embd,
    n_layer: positiveInt('n_layer'),
    n_head,
    n_inner: (nInner as number | null | undefined) ?? null,
    layer_norm_epsilon: epsilon,
    activation_function: 'gelu_new',
    initializer_range: typeof fields.initializer_range === 'number' ? fields.initializer_range : 0.02,
    bos_token_id: Number.isInteger(fields.bos_token_id) ? (fields.bos_token_id as number) : END_OF_TEXT_ID,
    eos_token_id: Number.isInteger(fields.eos_token_id) ? (fields.eos_token_id as number) : END_OF_TEXT_ID,
    tie_word_embeddings: true,
  };
}

/** config.json as HF transformers writes it, so that GPT2LMHeadModel and Transformers.js read it. */
export function configJson(config: Gpt2Config): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    ...config,
    n_ctx: config.n_positions,
    resid_pdrop: 0.1,
    embd_pdrop: 0.1,
    attn_pdrop: 0.1,
    summary_type: 'cls_index',
    summary_use_proj: true,
    summary_activation: null,
    summary_proj_to_labels: true,
    summary_first_dropout: 0.1,
    scale_attn_weights: true,
    use_cache: true,
    transformers_version: '4.46.0',
  };
}

/** Number of trainable parameters (lm_head is tied to wte and not counted twice). */
export function parameterCount(config: Gpt2Config): number {
  const c = config.n_embd;
  const inner = innerSize(config);
  const perLayer = 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + 2 * c + (c * inner + inner) + (inner * c + c);
  return config.vocab_size * c + config.n_positions * c + config.n_layer * perLayer + 2 * c;
}
