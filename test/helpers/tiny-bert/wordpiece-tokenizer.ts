/**
 * A small uncased WordPiece vocabulary and the tokenizer.json / tokenizer_config.json of a BERT
 * tokenizer over it, in the format Hugging Face tokenizers writes (BertNormalizer,
 * BertPreTokenizer, WordPiece, TemplateProcessing with [CLS] and [SEP]). Every lower-case
 * ASCII word can be spelled: single letters and digits exist both word-initial and as ##
 * continuations; some FAQ words and suffixes are whole pieces.
 */
export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;

const PUNCTUATION = [...'!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~'];
const LETTERS_AND_DIGITS = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
const WORDS = (
  'how do i can my the a to is what where when why who you your it of in on for and or not does are was have has ' +
  'get make use set up new reset password change email account login log sign out delete update order refund return ' +
  'ship shipping delivery cancel subscription plan price pay payment card invoice billing help support contact team ' +
  'open hours time weekend store app install download work lost forgot phone number address name profile settings ' +
  'language data export import file upload share invite user admin bot chat question answer thanks hello please'
).split(' ');
const SUFFIXES = ['##s', '##ing', '##ed', '##ting', '##er', '##ly', '##word'];

/** Token -> id, specials first ([PAD] = 0), as vocab.txt orders them. */
export function wordPieceVocab(): Map<string, number> {
  const tokens = [...SPECIAL_TOKENS, ...PUNCTUATION, ...LETTERS_AND_DIGITS, ...LETTERS_AND_DIGITS.map((c) => `##${c}`), ...WORDS, ...SUFFIXES];
  const vocab = new Map<string, number>();
  for (const token of tokens) if (!vocab.has(token)) vocab.set(token, vocab.size);
  return vocab;
}

export function tokenizerJson(vocab: ReadonlyMap<string, number>): object {
  const id = (token: string): number => {
    const found = vocab.get(token);
    if (found === undefined) throw new RangeError(`the vocabulary has no ${token}`);
    return found;
  };
  const special = (token: string, typeId: number) => ({ SpecialToken: { id: token, type_id: typeId } });
  const sequence = (name: 'A' | 'B', typeId: number) => ({ Sequence: { id: name, type_id: typeId } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content) => ({
      id: id(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0)],
      pair: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0), sequence('B', 1), special('[SEP]', 1)],
      special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((token) => [token, { id: token, ids: [id(token)], tokens: [token] }])),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocab),
    },
  };
}

export function tokenizerConfigJson(modelMaxLength: number): object {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: true,
    tokenize_chinese_chars: true,
    strip_accents: null,
    clean_up_tokenization_spaces: true,
    model_max_length: modelMaxLength,
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    mask_token: '[MASK]',
  };
}
