import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { getEncoding, type Tiktoken } from 'js-tiktoken';
import { ModelError } from '../../../src/model/errors.js';
import { SeededRandom } from '../../../src/model/random.js';
import { loadTokenizer, writeGpt2TokenizerFiles, type Tokenizer } from '../../../src/model/files/tokenizer.js';

const corpus: Record<string, string> = {
  english: 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.',
  accents: 'Café, naïve, façade, São Paulo, Zürich, Ångström, Dvořák, Łódź, crème brûlée',
  emoji: 'Thanks! 👍🏽 🎉🎉 I ❤️ it 😂😂😂',
  zwjAndFlags: 'family 👨‍👩‍👧‍👦, technologist 👩🏾‍💻, flags 🇫🇷🇯🇵🇺🇸 🏳️‍🌈',
  cjk: '日本語のテキストです。中文文本测试。한국어 텍스트',
  arabicHindi: 'مرحبا بالعالم — नमस्ते दुनिया',
  spaces: 'a  b   c    d          e ',
  tabs: '\tindented\t\tline\t',
  newlines: 'first\n\nsecond\n\n\n\nthird\n',
  crlf: 'line one\r\nline two\r\n\r\nline four\r\n',
  code: 'function add(a, b) {\n  return a + b; // sum\n}\n\nconst xs = [1, 2, 3].map((x) => x ** 2);\nif (x != null && y >= 0) { print("ok"); }\n',
  numbers: '3.14159 2,718 1e-10 -42 0x1F 1234567890 2024-01-31 12:30:45 $1,000.00 99%',
  contractions: "It's John's book; don't, can't, they're, we've, I'm, you'll, he'd. 'Quoted' text",
  endOfTextInside: 'first document<|endoftext|>second document <|endoftext|> third',
  endOfTextOnly: '<|endoftext|>',
  empty: '',
  singleSpace: ' ',
  trailingSpaces: 'end with spaces   ',
};

/** About 20,000 characters from a mix of scripts, symbols and whitespace, the same on every run. */
function seededMixedText(seed: number, length: number): string {
  const random = new SeededRandom(seed);
  const ranges: [number, number][] = [
    [0x20, 0x7e], // ASCII printable
    [0x20, 0x7e],
    [0x20, 0x7e],
    [0xc0, 0x17f], // Latin accents
    [0x3040, 0x30ff], // kana
    [0x4e00, 0x4fff], // CJK ideographs
    [0x0600, 0x06ff], // Arabic
    [0x0900, 0x097f], // Devanagari
    [0x1f300, 0x1f64f], // emoji, outside the BMP
  ];
  const fragments = [' ', ' ', '  ', '\n', '\n\n', '\r\n', '\t', "'s", "'re", '<|endoftext|>', '\u200d', '123'];
  const pick = (n: number): number => Math.floor(random.next() * n);
  let text = '';
  while (text.length < length) {
    if (random.next() < 0.25) {
      text += fragments[pick(fragments.length)];
    } else {
      const [low, high] = ranges[pick(ranges.length)];
      text += String.fromCodePoint(low + pick(high - low + 1));
    }
  }
  return text;
}

describe('GPT-2 tokenizer', () => {
  let dir: string;
  let tokenizer: Tokenizer;
  let tiktoken: Tiktoken;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tunebot-tokenizer-'));
    await writeGpt2TokenizerFiles(dir, 1024);
    tokenizer = await loadTokenizer(dir, 50257);
    tiktoken = getEncoding('r50k_base');
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reports the GPT-2 vocabulary size and end-of-text id', () => {
    assert.equal(tokenizer.vocabSize, 50257);
    assert.equal(tokenizer.eosTokenId, 50256);
  });

  for (const [name, text] of Object.entries(corpus)) {
    it(`encodes ${name} to the same ids as tiktoken r50k_base and decodes it back`, () => {
      const ids = tokenizer.encode(text);
      assert.deepEqual(ids, tiktoken.encode(text, 'all'));
      assert.equal(tokenizer.decode(ids), text);
    });
  }

  it('matches tiktoken on a long seeded mixed-script text and round-trips it', () => {
    const text = seededMixedText(7, 20_000);
    const ids = tokenizer.encode(text);
    assert.deepEqual(ids, tiktoken.encode(text, 'all'));
    assert.equal(tokenizer.decode(ids), text);
  });

  it('maps <|endoftext|> in text to 50256, adds no special tokens, and decodes 50256 back', () => {
    assert.deepEqual(tokenizer.encode('a<|endoftext|>b'), [64, 50256, 65]);
    assert.deepEqual(tokenizer.encode('Hello world'), [15496, 995]);
    assert.equal(tokenizer.decode([50256]), '<|endoftext|>');
    assert.equal(tokenizer.decode([]), '');
  });

  it('decodes a lone piece of a multi-byte character to U+FFFD (the streamer buffers such pieces)', () => {
    const ids = tokenizer.encode('👍');
    assert.ok(ids.length > 1, 'the emoji spans several byte-level tokens');
    for (const id of ids) {
      assert.match(tokenizer.decode([id]), /\uFFFD/);
    }
    assert.equal(tokenizer.decode(ids), '👍');
  });

  it('rejects ids outside the vocabulary when decoding', () => {
    assert.throws(() => tokenizer.decode([50257]), RangeError);
    assert.throws(() => tokenizer.decode([-1]), RangeError);
    assert.throws(() => tokenizer.decode([1.5]), RangeError);
  });

  it('writes the standard Hugging Face GPT-2 tokenizer files with the caller’s model_max_length', async () => {
    const other = await mkdtemp(join(tmpdir(), 'tunebot-tokenizer-'));
    try {
      await writeGpt2TokenizerFiles(other, 64);
      const config = JSON.parse(await readFile(join(other, 'tokenizer_config.json'), 'utf8'));
      assert.equal(config.tokenizer_class, 'GPT2Tokenizer');
      assert.equal(config.model_max_length, 64);
      for (const key of ['bos_token', 'eos_token', 'unk_token']) assert.equal(config[key], '<|endoftext|>');

      const json = JSON.parse(await readFile(join(other, 'tokenizer.json'), 'utf8'));
      assert.equal(json.model.type, 'BPE');
      assert.equal(Object.keys(json.model.vocab).length, 50257);
      assert.equal(json.model.merges.length, 50000);
      assert.equal(json.model.merges[0], 'Ġ t');
      assert.deepEqual(json.pre_tokenizer, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true });
      assert.equal(json.decoder.type, 'ByteLevel');
      assert.equal(json.post_processor.type, 'ByteLevel');
      assert.deepEqual(
        json.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t.content, t.special]),
        [[50256, '<|endoftext|>', true]],
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it('loads without any network request', async () => {
    const requests: string[] = [];
    const record = async (input: string | URL | Request): Promise<never> => {
      requests.push(String(input instanceof Request ? input.url : input));
      throw new Error('network is not allowed in this test');
    };
    const savedGlobalFetch = globalThis.fetch;
    const savedEnvFetch = env.fetch;
    globalThis.fetch = record;
    env.fetch = record;
    try {
      const loaded = await loadTokenizer(dir);
      assert.deepEqual(loaded.encode('no network'), tiktoken.encode('no network'));
    } finally {
      globalThis.fetch = savedGlobalFetch;
      env.fetch = savedEnvFetch;
    }
    assert.deepEqual(requests, []);
  });

  it('writes files that Transformers.js’s own offline loader reads to the same tokenizer', async () => {
    const saved = { allowRemoteModels: env.allowRemoteModels, useFSCache: env.useFSCache };
    env.allowRemoteModels = false;
    env.useFSCache = false;
    try {
      const hfTokenizer = await AutoTokenizer.from_pretrained(dir, { local_files_only: true });
      const text = corpus.code + corpus.endOfTextInside + corpus.emoji;
      assert.deepEqual(hfTokenizer.encode(text, { add_special_tokens: false }), tokenizer.encode(text));
      assert.equal(hfTokenizer.model_max_length, 1024);
    } finally {
      env.allowRemoteModels = saved.allowRemoteModels;
      env.useFSCache = saved.useFSCache;
    }
  });
});

describe('loadTokenizer errors', () => {
  let root: string;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tunebot-tokenizer-bad-'));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function freshDir(name: string): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir);
    await writeGpt2TokenizerFiles(dir, 1024);
    return dir;
  }

  function tokenizerInvalid(message: RegExp): (error: unknown) => boolean {
    return (error) => {
      assert.ok(error instanceof ModelError, `expected a ModelError, got ${String(error)}`);
      assert.equal(error.code, 'TOKENIZER_INVALID');
      assert.match(error.message, message);
      return true;
    };
  }

  it('reports a missing directory', async () => {
    await assert.rejects(loadTokenizer(join(root, 'does-not-exist')), tokenizerInvalid(/does-not-exist is unusable: no such directory/));
  });

  it('reports a missing tokenizer_config.json', async () => {
    const dir = await freshDir('no-config');
    await rm(join(dir, 'tokenizer_config.json'));
    await assert.rejects(loadTokenizer(dir), tokenizerInvalid(/tokenizer_config\.json is missing/));
  });

  it('reports a truncated tokenizer.json', async () => {
    const dir = await freshDir('truncated');
    const path = join(dir, 'tokenizer.json');
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.slice(0, Math.floor(text.length / 2)));
    await assert.rejects(loadTokenizer(dir), tokenizerInvalid(/tokenizer\.json is not valid JSON/));
  });

  it('reports a vocabulary size that differs from the model config', async () => {
    const dir = await freshDir('vocab-size');
    await assert.rejects(loadTokenizer(dir, 50000), tokenizerInvalid(/50257 tokens but the model's vocab_size is 50000/));
  });

  it('reports a tokenizer that is not a GPT-2 byte-level BPE', async () => {
    const dir = await freshDir('wordpiece');
    const path = join(dir, 'tokenizer.json');
    const json = JSON.parse(await readFile(path, 'utf8'));
    json.model.type = 'WordPiece';
    await writeFile(path, JSON.stringify(json));
    await assert.rejects(loadTokenizer(dir), tokenizerInvalid(/model\.type is "WordPiece", expected "BPE"/));
  });

  it('reports an end-of-text token missing from the vocabulary', async () => {
    const dir = await freshDir('no-eos');
    const path = join(dir, 'tokenizer_config.json');
    const config = JSON.parse(await readFile(path, 'utf8'));
    config.eos_token = '<|eos|>';
    await writeFile(path, JSON.stringify(config));
    await assert.rejects(loadTokenizer(dir), tokenizerInvalid(/eos_token "<\|eos\|>" is not in the vocabulary/));
  });
});
