import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaqError, normalizeQuestion, type FaqRecord } from '../../src/core/faq/entry.js';
import {
  detectFormat,
  FAQ_FORMATS,
  MAX_FAQ_FILE_BYTES,
  parseFaqDocument,
  serializeFaq,
  SYNONYM_FORMATS,
  toFaqFormat,
  type FaqFormat,
} from '../../src/core/faq/formats.js';

const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');

function parse(text: string, format: FaqFormat): FaqRecord[] {
  return parseFaqDocument(utf8(text), format).records.map(({ line: _line, ...record }) => record);
}

/** Asserts a FaqError with this code whose message matches, and returns it for more checks. */
function rejects(run: () => unknown, code: string, message: RegExp): FaqError {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof FaqError, `expected a FaqError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, message);
  return caught;
}

/** Entries whose answers and questions hit every format's special characters. */
const TRICKY: FaqRecord[] = [
  { id: 'q1', question: 'How do I pay, and when?', answer: 'By card, "Visa" or \'Amex\'; monthly.', tags: ['billing', 'money matters'], alternates: ['when is my card charged', 'pay w/ "amex"; ok?', 'billing --> date'] },
  {
    id: 'q2',
    question: 'What is C#',
    answer: 'Line one\nline two, with a comma\n\n## not a question\n# nor this\n\\# an escaped hash\n\\\\# two backslashes',
    tags: [],
  },
  {
    id: 'faq.3',
    question: 'Shell setup?',
    answer: 'Run:\n```sh\n# install\nnpm ci\n```\nthen\n~~~\n## inside tilde fence\n~~~\n```js\n# an unclosed fence\n## more',
    tags: ['setup'],
  },
  { id: 'q4', question: 'yes', answer: 'null', tags: ['1.10', 'true'] },
  { id: 'q5', question: '- a list? #', answer: '- item: one\n- item: two\n  indented: yes # not a comment\n| a | b |\n|---|---|\n*bold* _it_ `code` [link](http://x) <b>html</b> & < >', tags: ['md'] },
  { id: 'q6', question: 'Unicode: 日本語で質問できますか？', alternates: ['日本語 ok?', '# not a heading'], answer: 'はい 🎉 — Ελληνικά, עברית, العربية, e\u0301 (combining), 𝔘𝔫𝔦', tags: ['i18n', 'ü'] },
  { id: 'q7', question: 'Comment-like answer', answer: '<!-- faq: {"id":"x"} -->\nstill the answer -->', tags: ['a-->b'] },
  { id: 'q8', question: 'Quotes only', answer: '""', tags: [] },
];

describe('FAQ formats: round trip', () => {
  for (const format of FAQ_FORMATS) {
    it(`${format}: parse(serialize(entries)) gives the entries back`, () => {
      const text = serializeFaq(TRICKY, format);
      assert.deepEqual(parse(text, format), TRICKY);
    });
  }

  it('entries without ids or tags stay without them (json, yaml, markdown)', () => {
    const plain: FaqRecord[] = [{ question: 'Where?', answer: 'Here.' }];
    for (const format of ['json', 'jsonl', 'yaml', 'markdown', 'csv'] as const) {
      assert.deepEqual(parse(serializeFaq(plain, format), format), plain, format);
    }
  });

  it('stored entries (with updatedAt) export without the time and import back', () => {
    const entry = { id: 'q1', question: 'A?', answer: 'B.', tags: ['t'], updatedAt: '2024-01-01T00:00:00.000Z' };
    for (const format of FAQ_FORMATS) {
      assert.deepEqual(parse(serializeFaq([entry], format), format), [{ id: 'q1', question: 'A?', answer: 'B.', tags: ['t'] }], format);
    }
  });
});

/** Synonym groups as checkSynonyms leaves them, with characters each format must escape. */
const SYNONYMS = [
  ['money back', 'refund', 'reimbursement'],
  ['2fa', 'two-factor auth', 'say "hi" --> now'],
  ['null', 'yes', '1.10'],
  ['日本語', 'にほんご'],
  ['c# [x], {y}: z', '- dash # hash'],
];

describe('synonyms in FAQ files', () => {
  const parsed = (text: string, format: FaqFormat) => {
    const { records, synonyms } = parseFaqDocument(utf8(text), format);
    return { records: records.map(({ line: _line, ...record }) => record), synonyms };
  };

  for (const format of SYNONYM_FORMATS) {
    it(`${format}: the synonym list travels with the entries`, () => {
      assert.deepEqual(parsed(serializeFaq(TRICKY, format, SYNONYMS), format), { records: TRICKY, synonyms: SYNONYMS });
    });
  }

  it('CSV has no place for them: an export leaves them out and an import states none', () => {
    const text = serializeFaq(TRICKY, 'csv', SYNONYMS);
    assert.equal(text, serializeFaq(TRICKY, 'csv'));
    assert.deepEqual(parsed(text, 'csv'), { records: TRICKY, synonyms: undefined });
  });

  it('an FAQ without synonyms is written as before, and reads back as stating none', () => {
    const plain: FaqRecord[] = [{ question: 'Where?', answer: 'Here.' }];
    assert.equal(serializeFaq(plain, 'json'), '[\n  {\n    "question": "Where?",\n    "answer": "Here."\n  }\n]\n');
    assert.equal(serializeFaq(plain, 'yaml'), '- question: Where?\n  answer: Here.\n');
    assert.equal(serializeFaq(plain, 'jsonl'), '{"question":"Where?","answer":"Here."}\n');
    assert.equal(serializeFaq(plain, 'markdown'), '## Where?\n\nHere.\n');
    for (const format of FAQ_FORMATS) assert.deepEqual(parsed(serializeFaq(plain, format, []), format), { records: plain, synonyms: undefined }, format);
  });

  it('writes each format the way a person would: a group per line, the list first', () => {
    const entry: FaqRecord[] = [{ question: 'Refund?', answer: 'Yes.' }];
    const groups = [['money back', 'refund']];
    assert.equal(serializeFaq(entry, 'json', groups), '{\n  "synonyms": [\n    ["money back","refund"]\n  ],\n  "entries": [\n    {\n      "question": "Refund?",\n      "answer": "Yes."\n    }\n  ]\n}\n');
    assert.equal(serializeFaq(entry, 'jsonl', groups), '{"synonyms":[["money back","refund"]]}\n{"question":"Refund?","answer":"Yes."}\n');
    assert.equal(serializeFaq(entry, 'yaml', groups), 'synonyms:\n  - [ money back, refund ]\nentries:\n  - question: Refund?\n    answer: Yes.\n');
    assert.equal(serializeFaq(entry, 'markdown', groups), '<!-- faq-synonyms: [["money back","refund"]] -->\n\n## Refund?\n\nYes.\n');
  });

  it('reads hand-written lists, cleaned and joined as the synonym list keeps them', () => {
    const json = '{"entries": [{"question": "Refund?", "answer": "Yes."}], "synonyms": [["Money  Back", "refund"], ["refund", "repayment"], ["2FA", "two-factor"]]}';
    assert.deepEqual(parsed(json, 'json').synonyms, [['money back', 'refund', 'repayment'], ['2fa', 'two-factor']]);
    const yaml = 'synonyms:\n  - - money back\n    - refund\nentries:\n  - question: Refund?\n    answer: Yes.\n';
    assert.deepEqual(parsed(yaml, 'yaml'), { records: [{ question: 'Refund?', answer: 'Yes.' }], synonyms: [['money back', 'refund']] });
    const jsonl = '{"question": "Refund?", "answer": "Yes."}\n{"synonyms": [["money back", "refund"]]}\n';
    assert.deepEqual(parsed(jsonl, 'jsonl').synonyms, [['money back', 'refund']]);
    const markdown = 'Our FAQ.\n<!--faq-synonyms:[["money back", "refund"]]-->\n# Refund?\nYes.\n';
    assert.deepEqual(parsed(markdown, 'markdown'), { records: [{ question: 'Refund?', answer: 'Yes.' }], synonyms: [['money back', 'refund']] });
  });

  it('an explicit empty list states that the FAQ has none', () => {
    assert.deepEqual(parsed('{"synonyms": [], "entries": [{"question": "A?", "answer": "B"}]}', 'json').synonyms, []);
    assert.deepEqual(parsed('synonyms: []\nentries:\n  - question: A?\n    answer: B\n', 'yaml').synonyms, []);
  });

  it('Markdown: a faq-synonyms comment under a heading, or in a code block, is text, not the list', () => {
    const text = '```\n<!-- faq-synonyms: [["a b", "c d"]] -->\n```\n## A?\n<!-- faq-synonyms: [["a b", "c d"]] -->\nB\n';
    assert.deepEqual(parsed(text, 'markdown'), { records: [{ question: 'A?', answer: '<!-- faq-synonyms: [["a b", "c d"]] -->\nB' }], synonyms: undefined });
  });

  it('JSON: names the line of a bad group, a bad phrase, a refused list, an unknown or repeated key, and a bad entry', () => {
    const file = (synonyms: string, entries = '[\n    {"question": "A?", "answer": "B"}\n  ]') => `{\n  "synonyms": [\n${synonyms}\n  ],\n  "entries": ${entries}\n}`;
    let error = rejects(() => parseFaqDocument(utf8(file('    ["refund", "money back"],\n    "refund"')), 'json'), 'FAQ_INVALID', /^line 4: synonym group 2 must be a list of words or phrases, such as \["money back", "refund"\]; got string "refund"$/);
    assert.equal(error.line, 4);
    rejects(() => parseFaqDocument(utf8(file('    ["refund", 7]')), 'json'), 'FAQ_INVALID', /^line 3: synonym group 1: each word or phrase must be text, got number 7$/);
    error = rejects(() => parseFaqDocument(utf8(file('    ["refund", "money back"],\n    ["the", "a"]')), 'json'), 'FAQ_INVALID', /^line 2: synonym group 2: "the" has no word that is not a stopword/);
    assert.equal(error.line, 2);
    rejects(() => parseFaqDocument(utf8(file('    ["refund", "Refund"]')), 'json'), 'FAQ_INVALID', /^line 2: the synonym group "refund" has one phrase; a group needs two or more$/);
    rejects(() => parseFaqDocument(utf8('{\n  "synonyms": {"refund": "money back"},\n  "entries": []\n}'), 'json'), 'FAQ_INVALID', /^line 2: synonyms must be a list of groups of words or phrases, such as \[\["money back", "refund"\], \["2fa", "two-factor"\]\]; got an object$/);
    rejects(() => parseFaqDocument(utf8('{\n  "entries": [],\n  "topics": []\n}'), 'json'), 'FAQ_INVALID', /^line 3: expected a JSON array of \{"question": \.\.\., "answer": \.\.\.\} objects, or an object with "synonyms" and "entries"; found the key "topics"$/);
    rejects(() => parseFaqDocument(utf8('{\n  "entries": [],\n  "entries": []\n}'), 'json'), 'FAQ_INVALID', /^line 3: "entries" again; it is already on line 2$/);
    rejects(() => parseFaqDocument(utf8('{\n  "synonyms": [["a b", "c d"]]\n}'), 'json'), 'FAQ_INVALID', /^line 1: "entries" must be the list of/);
    rejects(() => parseFaqDocument(utf8('{\n  "synonyms": [["a b", "c d"]],\n  "entries": {"question": "A?"}\n}'), 'json'), 'FAQ_INVALID', /^line 3: "entries" must be the list of/);
    error = rejects(() => parseFaqDocument(utf8(file('    ["refund", "money back"]', '[\n    {"question": "A?", "answer": "B"},\n\n    {"question": "Where?"}\n  ]')), 'json'), 'FAQ_INVALID', /^line 8: "Where\?" has no answer$/);
    assert.equal(error.line, 8);
    rejects(() => parseFaqDocument(utf8('{"synonyms": [["a b", "c d"]], "entries": []}'), 'json'), 'FAQ_EMPTY', /no FAQ entries/);
  });

  it('JSON Lines: one synonyms line, holding nothing else, errors naming its line', () => {
    const entry = '{"question": "A?", "answer": "B"}';
    rejects(() => parseFaqDocument(utf8(`${entry}\n{"synonyms": [["a b", "c d"]], "question": "C?"}\n`), 'jsonl'), 'FAQ_INVALID', /^line 2: a synonyms line holds only \{"synonyms": .*\}; found "question" beside it$/);
    rejects(() => parseFaqDocument(utf8(`{"synonyms": [["a b", "c d"]]}\n${entry}\n\n{"synonyms": [["e f", "g h"]]}\n`), 'jsonl'), 'FAQ_INVALID', /^line 4: a second synonyms line; the first is line 1$/);
    rejects(() => parseFaqDocument(utf8(`${entry}\n\n{"synonyms": [["refund"], ["a b", "c d"]]}\n`), 'jsonl'), 'FAQ_INVALID', /^line 3: the synonym group "refund" has one phrase/);
  });

  it('YAML: names the line of a bad group, an unknown key and a bad entry', () => {
    rejects(() => parseFaqDocument(utf8('synonyms:\n  - [money back, refund]\n  - refund\nentries:\n  - question: A?\n    answer: B\n'), 'yaml'), 'FAQ_INVALID', /^line 3: synonym group 2 must be a list/);
    rejects(() => parseFaqDocument(utf8('synonyms:\n  - [money back, refund]\n  - [the, a]\nentries:\n  - question: A?\n    answer: B\n'), 'yaml'), 'FAQ_INVALID', /^line 2: synonym group 2: "the" has no word/);
    rejects(() => parseFaqDocument(utf8('synonyms: refund\nentries:\n  - question: A?\n    answer: B\n'), 'yaml'), 'FAQ_INVALID', /^line 1: synonyms must be a list of groups/);
    rejects(() => parseFaqDocument(utf8('synonyms: []\nentries:\n  - question: A?\n    answer: B\ntopics: []\n'), 'yaml'), 'FAQ_INVALID', /^line 5: expected a list of entries .*; found the key "topics"$/);
    rejects(() => parseFaqDocument(utf8('synonyms: [[a b, c d]]\n'), 'yaml'), 'FAQ_INVALID', /^line 1: "entries" must be the list of entries/);
    rejects(() => parseFaqDocument(utf8('synonyms: [[a b, c d]]\nentries:\n  - question: A?\n    answer: B\n  - question: C?\n'), 'yaml'), 'FAQ_INVALID', /^line 5: "C\?" has no answer$/);
  });

  it('Markdown: names the line of a comment that is not a list, a bad list, and a second comment', () => {
    rejects(() => parseFaqDocument(utf8('Intro.\n<!-- faq-synonyms: [["money back", "refund"] -->\n## A?\nB\n'), 'markdown'), 'FAQ_INVALID', /^line 2: the faq-synonyms comment must hold a JSON list of groups such as /);
    rejects(() => parseFaqDocument(utf8('<!-- faq-synonyms: [["refund", "the"]] -->\n## A?\nB\n'), 'markdown'), 'FAQ_INVALID', /^line 1: synonym group 1: "the" has no word/);
    rejects(() => parseFaqDocument(utf8('<!-- faq-synonyms: [["a b", "c d"]] -->\n\n<!-- faq-synonyms: [["e f", "g h"]] -->\n## A?\nB\n'), 'markdown'), 'FAQ_INVALID', /^line 3: a second faq-synonyms comment; the first is on line 1$/);
  });
});

describe('CSV', () => {
  it('reads RFC 4180: header in any order and case, quoted commas, quotes and line breaks, CRLF', () => {
    const text = 'Answer,QUESTION,Tags\r\n"Yes, ""really"",\r\non two lines",Is it free?,a; b ;;a\r\nNo.,Is it slow?,\r\n';
    assert.deepEqual(parse(text, 'csv'), [
      { question: 'Is it free?', answer: 'Yes, "really",\non two lines', tags: ['a', 'b'] },
      { question: 'Is it slow?', answer: 'No.', tags: [] },
    ]);
  });

  it('names the starting line of each row, counting lines inside quoted fields', () => {
    const text = 'question,answer\nOne?,"a\nb\nc"\nTwo?,\n';
    const error = rejects(() => parseFaqDocument(utf8(text), 'csv'), 'FAQ_INVALID', /^line 5: the answer to "Two\?" is empty/);
    assert.equal(error.line, 5);
  });

  it('refuses a quote inside an unquoted field, naming line and column', () => {
    const error = rejects(() => parseFaqDocument(utf8('question,answer\nWhy?,say "hi"\n'), 'csv'), 'FAQ_INVALID', /^line 2, column 10: a quote inside an unquoted field/);
    assert.equal(error.column, 10);
  });

  it('refuses text after a closing quote', () => {
    rejects(() => parseFaqDocument(utf8('question,answer\nWhy?,"say "hi" now"\n'), 'csv'), 'FAQ_INVALID', /^line 2, column 12: unexpected "h" after a closing quote/);
  });

  it('refuses a quoted field that is never closed, naming the line it opens on', () => {
    rejects(() => parseFaqDocument(utf8('question,answer\nA?,B\nWhy?,"open\nand on\n'), 'csv'), 'FAQ_INVALID', /^line 3: a quoted field starts here and is never closed/);
  });

  it('refuses a header without question or answer, unknown columns and rows of the wrong width', () => {
    rejects(() => parseFaqDocument(utf8('question,reply\nA?,B\n'), 'csv'), 'FAQ_INVALID', /^line 1: unknown column "reply"; the columns are id, question, answer, tags/);
    rejects(() => parseFaqDocument(utf8('id,question\n1,A?\n'), 'csv'), 'FAQ_INVALID', /^line 1: the header row has no "answer" column/);
    rejects(() => parseFaqDocument(utf8('question;answer\nA?;B\n'), 'csv'), 'FAQ_INVALID', /separate columns with commas/);
    rejects(() => parseFaqDocument(utf8('question,answer\nA?,B,C\n'), 'csv'), 'FAQ_INVALID', /^line 2: expected 2 fields \(question, answer\), found 3/);
  });

  it('skips blank lines and rows of empty fields; a header alone is an empty FAQ', () => {
    assert.deepEqual(parse('question,answer\n\n,\nA?,B\n\n', 'csv'), [{ question: 'A?', answer: 'B' }]);
    rejects(() => parseFaqDocument(utf8('question,answer\n'), 'csv'), 'FAQ_EMPTY', /no FAQ entries/);
  });
});

describe('JSON and JSON Lines', () => {
  it('names the line of an entry with no answer', () => {
    const text = '[\n  {"question": "A?", "answer": "B"},\n  {\n    "question": "Where?"\n  }\n]';
    const error = rejects(() => parseFaqDocument(utf8(text), 'json'), 'FAQ_INVALID', /^line 3: "Where\?" has no answer/);
    assert.equal(error.line, 3);
  });

  it('names line and column of a syntax error', () => {
    const error = rejects(() => parseFaqDocument(utf8('[\n  {"question": "A?", "answer": "B",}\n]'), 'json'), 'FAQ_INVALID', /^line 2, column 36: Expected double-quoted property name/);
    assert.deepEqual([error.line, error.column], [2, 36]);
  });

  it('refuses a non-array document, non-object entries, unknown keys and non-text answers', () => {
    rejects(() => parseFaqDocument(utf8('{"question": "A?", "answer": "B"}'), 'json'), 'FAQ_INVALID', /^line 1: expected a JSON array .*; found the key "question"$/);
    rejects(() => parseFaqDocument(utf8('\n "A?"'), 'json'), 'FAQ_INVALID', /^line 2: expected a JSON array .*, found string "A\?"$/);
    rejects(() => parseFaqDocument(utf8('[\n"A?"\n]'), 'json'), 'FAQ_INVALID', /^line 2: expected an object/);
    rejects(() => parseFaqDocument(utf8('[{"question": "A?", "answer": "B", "category": "x"}]'), 'json'), 'FAQ_INVALID', /unknown key "category"; an entry has id, question, answer, tags/);
    rejects(() => parseFaqDocument(utf8('[{"question": "A?", "answer": 42}]'), 'json'), 'FAQ_INVALID', /the answer must be text, got number 42/);
  });

  it('takes numeric ids and ;-separated tag strings', () => {
    assert.deepEqual(parse('[{"id": 7, "question": "A?", "answer": "B", "tags": "x; y"}]', 'json'), [
      { id: '7', question: 'A?', answer: 'B', tags: ['x', 'y'] },
    ]);
  });

  it('JSON Lines: skips blank lines and names the bad line', () => {
    const text = '{"question": "A?", "answer": "B"}\n\n{"question": "C?", "answer": "D"}\n{"question": "E?" "answer": "F"}\n';
    const error = rejects(() => parseFaqDocument(utf8(text), 'jsonl'), 'FAQ_INVALID', /^line 4, column 19: /);
    assert.equal(error.line, 4);
    assert.equal(parse(text.split('\n').slice(0, 3).join('\n'), 'jsonl').length, 2);
  });
});

describe('YAML', () => {
  it('reads every scalar as text', () => {
    const text = '- question: Is it on?\n  answer: no\n  id: 10\n  tags: [1.10, null]\n- question: Version?\n  answer: 1.10\n';
    assert.deepEqual(parse(text, 'yaml'), [
      { id: '10', question: 'Is it on?', answer: 'no', tags: ['1.10', 'null'] },
      { question: 'Version?', answer: '1.10' },
    ]);
  });

  it('names the line of a syntax error, a missing answer and an unknown key', () => {
    rejects(() => parseFaqDocument(utf8('- question: A?\n  answer: B\n- question: "C?\n  answer: D\n'), 'yaml'), 'FAQ_INVALID', /^line \d+, column \d+: Missing closing "quote/);
    rejects(() => parseFaqDocument(utf8('- question: A?\n  answer: B\n- question: C?\n'), 'yaml'), 'FAQ_INVALID', /^line 3: "C\?" has no answer/);
    rejects(() => parseFaqDocument(utf8('- question: A?\n  answer: B\n  topic: x\n'), 'yaml'), 'FAQ_INVALID', /^line 1: unknown key "topic"/);
    rejects(() => parseFaqDocument(utf8('question: A?\nanswer: B\n'), 'yaml'), 'FAQ_INVALID', /^line 1: expected a list of entries/);
  });
});

describe('Markdown', () => {
  it('reads a heading per question, skipping the introduction and section titles', () => {
    const text = [
      'Our FAQ. Read it first.',
      '# Billing',
      '## How do I pay? ##',
      '',
      'By card.',
      '',
      'Or by *invoice*.',
      '### Refunds?',
      'Within 30 days.',
      '#### Details',
      'Write to us.',
      '# Can I cancel?',
      'Yes.',
    ].join('\n');
    const { records } = parseFaqDocument(utf8(text), 'markdown');
    assert.deepEqual(
      records.map((record) => [record.line, record.question, record.answer]),
      [
        [3, 'How do I pay?', 'By card.\n\nOr by *invoice*.'],
        [8, 'Refunds?', 'Within 30 days.\n#### Details\nWrite to us.'],
        [12, 'Can I cancel?', 'Yes.'],
      ],
    );
  });

  it('keeps # lines inside code fences in the answer', () => {
    const text = '## Setup?\n```sh\n# install\n## twice\n```\nDone.\n## Next?\nYes.';
    assert.deepEqual(parse(text, 'markdown'), [
      { question: 'Setup?', answer: '```sh\n# install\n## twice\n```\nDone.' },
      { question: 'Next?', answer: 'Yes.' },
    ]);
  });

  it('refuses a question with no answer, and an empty heading, naming the line', () => {
    rejects(() => parseFaqDocument(utf8('## A?\nB\n## C?\n\n## D?\nE'), 'markdown'), 'FAQ_INVALID', /^line 3: the question "C\?" has no answer/);
    rejects(() => parseFaqDocument(utf8('## A?\nB\n##\nE'), 'markdown'), 'FAQ_INVALID', /^line 3: a heading with no question/);
    rejects(() => parseFaqDocument(utf8('Just prose, no headings.\n'), 'markdown'), 'FAQ_EMPTY', /heading/);
  });
});

describe('duplicates', () => {
  it('normalizeQuestion folds case, width, whitespace and trailing punctuation', () => {
    assert.equal(normalizeQuestion('  How do I   RESET my Password?! '), 'how do i reset my password');
    assert.equal(normalizeQuestion('Ｗｈｙ？'), 'why');
    assert.equal(normalizeQuestion('STRASSE'), normalizeQuestion('straße'));
    assert.equal(normalizeQuestion('What is C#?'), 'what is c#');
    assert.notEqual(normalizeQuestion('What is C#?'), normalizeQuestion('What is C?'));
  });

  it('reports two questions that are the same after normalization, naming both lines', () => {
    const text = 'question,answer\nHow do I reset my password?,One\nOther?,Two\nhow do i reset my  PASSWORD,Three\n';
    const error = rejects(
      () => parseFaqDocument(utf8(text), 'csv'),
      'FAQ_DUPLICATE',
      /^line 4: "how do i reset my PASSWORD" repeats the question "How do I reset my password\?" of line 2/,
    );
    assert.equal(error.line, 4);
  });

  it('reports an alternate phrasing that repeats another entry\'s question, naming both', () => {
    const text = 'question,answer,alternates\nHow do I cancel?,Settings.,"stop paying\nend my sub"\nHow do I pause?,Pause it.,"End my sub"\n';
    const error = rejects(
      () => parseFaqDocument(utf8(text), 'csv'),
      'FAQ_DUPLICATE',
      /^line 4: the alternate "End my sub" of "How do I pause\?" repeats the alternate "end my sub" of "How do I cancel\?" of line 2/,
    );
    assert.equal(error.line, 4);
  });

  it('drops blank and repeated alternates and the question itself; refuses alternates that are not text', () => {
    const [record] = parse(JSON.stringify([{ question: 'How do I cancel?', answer: 'A.', alternates: ['how do i cancel', ' stop  paying ', '', 'Stop paying?'] }]), 'json');
    assert.deepEqual(record.alternates, ['stop paying']);
    rejects(() => parseFaqDocument(utf8(JSON.stringify([{ question: 'Q?', answer: 'A.', alternates: [3] }])), 'json'), 'FAQ_INVALID', /alternates must be a list of text/);
  });

  it('reports two entries with one id', () => {
    rejects(() => parseFaqDocument(utf8('id,question,answer\nx,A?,B\nx,C?,D\n'), 'csv'), 'FAQ_DUPLICATE', /^line 3: the id "x" is already used by "A\?" on line 2/);
  });
});

describe('files that are not FAQ text', () => {
  it('refuses an empty file and a blank one', () => {
    for (const format of FAQ_FORMATS) {
      rejects(() => parseFaqDocument(new Uint8Array(0), format), 'FAQ_EMPTY', /^the file is empty$/);
      rejects(() => parseFaqDocument(utf8(' \n\t\r\n'), format), 'FAQ_EMPTY', /blank/);
    }
  });

  it('refuses a binary file', () => {
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]);
    rejects(() => parseFaqDocument(png, 'csv'), 'FAQ_NOT_TEXT', /looks binary \(a NUL byte at byte 8\)/);
  });

  it('refuses text that is not UTF-8, naming the line', () => {
    const latin1 = Buffer.from('question,answer\nCaf\xe9?,Yes\n', 'latin1');
    const error = rejects(() => parseFaqDocument(latin1, 'csv'), 'FAQ_NOT_TEXT', /^line 2: the file is not UTF-8 text \(byte 0xe9 at byte 19\)/);
    assert.equal(error.line, 2);
    rejects(() => parseFaqDocument(Uint8Array.from([0x41, 0xc0, 0xaf]), 'csv'), 'FAQ_NOT_TEXT', /byte 0xc0 at byte 1/);
    rejects(() => parseFaqDocument(Uint8Array.from([0x41, 0xed, 0xa0, 0x80]), 'csv'), 'FAQ_NOT_TEXT', /byte 0xed at byte 1/);
    rejects(() => parseFaqDocument(Buffer.from('\ufeffquestion,answer', 'utf16le'), 'csv'), 'FAQ_NOT_TEXT', /UTF-16/);
  });

  it('reads a UTF-8 byte order mark as nothing', () => {
    assert.deepEqual(parse('\ufeffquestion,answer\nA?,B\n', 'csv'), [{ question: 'A?', answer: 'B' }]);
  });

  it('refuses a file one byte over the limit before looking at its bytes', () => {
    const tooLarge = new Uint8Array(MAX_FAQ_FILE_BYTES + 1).fill(0xff);
    rejects(() => parseFaqDocument(tooLarge, 'json'), 'FAQ_TOO_LARGE', /^the file is 50\.00 MB; FAQ files can be at most 50 MB$/);
  });
});

describe('format names', () => {
  it('detects the format from a file name', () => {
    assert.equal(detectFormat('faq.CSV'), 'csv');
    assert.equal(detectFormat('dir.v2/faq.jsonl'), 'jsonl');
    assert.equal(detectFormat('faq.ndjson'), 'jsonl');
    assert.equal(detectFormat('faq.yml'), 'yaml');
    assert.equal(detectFormat('FAQ.markdown'), 'markdown');
    rejects(() => detectFormat('faq.txt'), 'FAQ_FORMAT_UNKNOWN', /"faq\.txt".*\.csv, \.json/);
    rejects(() => detectFormat('faq'), 'FAQ_FORMAT_UNKNOWN', /from its name/);
  });

  it('reads a format named in a command', () => {
    assert.equal(toFaqFormat('md'), 'markdown');
    assert.equal(toFaqFormat('YAML'), 'yaml');
    rejects(() => toFaqFormat('xml'), 'FAQ_FORMAT_UNKNOWN', /use one of csv, json, jsonl, yaml, markdown/);
  });
});
