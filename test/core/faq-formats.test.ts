import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaqError, normalizeQuestion, type FaqRecord } from '../../src/core/faq/entry.js';
import {
  detectFormat,
  FAQ_FORMATS,
  MAX_FAQ_FILE_BYTES,
  parseFaqFile,
  serializeFaq,
  toFaqFormat,
  type FaqFormat,
} from '../../src/core/faq/formats.js';

const utf8 = (text: string): Uint8Array => Buffer.from(text, 'utf8');

function parse(text: string, format: FaqFormat): FaqRecord[] {
  return parseFaqFile(utf8(text), format).map(({ line: _line, ...record }) => record);
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
    const error = rejects(() => parseFaqFile(utf8(text), 'csv'), 'FAQ_INVALID', /^line 5: the answer to "Two\?" is empty/);
    assert.equal(error.line, 5);
  });

  it('refuses a quote inside an unquoted field, naming line and column', () => {
    const error = rejects(() => parseFaqFile(utf8('question,answer\nWhy?,say "hi"\n'), 'csv'), 'FAQ_INVALID', /^line 2, column 10: a quote inside an unquoted field/);
    assert.equal(error.column, 10);
  });

  it('refuses text after a closing quote', () => {
    rejects(() => parseFaqFile(utf8('question,answer\nWhy?,"say "hi" now"\n'), 'csv'), 'FAQ_INVALID', /^line 2, column 12: unexpected "h" after a closing quote/);
  });

  it('refuses a quoted field that is never closed, naming the line it opens on', () => {
    rejects(() => parseFaqFile(utf8('question,answer\nA?,B\nWhy?,"open\nand on\n'), 'csv'), 'FAQ_INVALID', /^line 3: a quoted field starts here and is never closed/);
  });

  it('refuses a header without question or answer, unknown columns and rows of the wrong width', () => {
    rejects(() => parseFaqFile(utf8('question,reply\nA?,B\n'), 'csv'), 'FAQ_INVALID', /^line 1: unknown column "reply"; the columns are id, question, answer, tags/);
    rejects(() => parseFaqFile(utf8('id,question\n1,A?\n'), 'csv'), 'FAQ_INVALID', /^line 1: the header row has no "answer" column/);
    rejects(() => parseFaqFile(utf8('question;answer\nA?;B\n'), 'csv'), 'FAQ_INVALID', /separate columns with commas/);
    rejects(() => parseFaqFile(utf8('question,answer\nA?,B,C\n'), 'csv'), 'FAQ_INVALID', /^line 2: expected 2 fields \(question, answer\), found 3/);
  });

  it('skips blank lines and rows of empty fields; a header alone is an empty FAQ', () => {
    assert.deepEqual(parse('question,answer\n\n,\nA?,B\n\n', 'csv'), [{ question: 'A?', answer: 'B' }]);
    rejects(() => parseFaqFile(utf8('question,answer\n'), 'csv'), 'FAQ_EMPTY', /no FAQ entries/);
  });
});

describe('JSON and JSON Lines', () => {
  it('names the line of an entry with no answer', () => {
    const text = '[\n  {"question": "A?", "answer": "B"},\n  {\n    "question": "Where?"\n  }\n]';
    const error = rejects(() => parseFaqFile(utf8(text), 'json'), 'FAQ_INVALID', /^line 3: "Where\?" has no answer/);
    assert.equal(error.line, 3);
  });

  it('names line and column of a syntax error', () => {
    const error = rejects(() => parseFaqFile(utf8('[\n  {"question": "A?", "answer": "B",}\n]'), 'json'), 'FAQ_INVALID', /^line 2, column 36: Expected double-quoted property name/);
    assert.deepEqual([error.line, error.column], [2, 36]);
  });

  it('refuses a non-array document, non-object entries, unknown keys and non-text answers', () => {
    rejects(() => parseFaqFile(utf8('{"question": "A?", "answer": "B"}'), 'json'), 'FAQ_INVALID', /^line 1: expected a JSON array/);
    rejects(() => parseFaqFile(utf8('[\n"A?"\n]'), 'json'), 'FAQ_INVALID', /^line 2: expected an object/);
    rejects(() => parseFaqFile(utf8('[{"question": "A?", "answer": "B", "category": "x"}]'), 'json'), 'FAQ_INVALID', /unknown key "category"; an entry has id, question, answer, tags/);
    rejects(() => parseFaqFile(utf8('[{"question": "A?", "answer": 42}]'), 'json'), 'FAQ_INVALID', /the answer must be text, got number 42/);
  });

  it('takes numeric ids and ;-separated tag strings', () => {
    assert.deepEqual(parse('[{"id": 7, "question": "A?", "answer": "B", "tags": "x; y"}]', 'json'), [
      { id: '7', question: 'A?', answer: 'B', tags: ['x', 'y'] },
    ]);
  });

  it('JSON Lines: skips blank lines and names the bad line', () => {
    const text = '{"question": "A?", "answer": "B"}\n\n{"question": "C?", "answer": "D"}\n{"question": "E?" "answer": "F"}\n';
    const error = rejects(() => parseFaqFile(utf8(text), 'jsonl'), 'FAQ_INVALID', /^line 4, column 19: /);
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
    rejects(() => parseFaqFile(utf8('- question: A?\n  answer: B\n- question: "C?\n  answer: D\n'), 'yaml'), 'FAQ_INVALID', /^line \d+, column \d+: Missing closing "quote/);
    rejects(() => parseFaqFile(utf8('- question: A?\n  answer: B\n- question: C?\n'), 'yaml'), 'FAQ_INVALID', /^line 3: "C\?" has no answer/);
    rejects(() => parseFaqFile(utf8('- question: A?\n  answer: B\n  topic: x\n'), 'yaml'), 'FAQ_INVALID', /^line 1: unknown key "topic"/);
    rejects(() => parseFaqFile(utf8('question: A?\nanswer: B\n'), 'yaml'), 'FAQ_INVALID', /^line 1: expected a list of entries/);
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
    const records = parseFaqFile(utf8(text), 'markdown');
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
    rejects(() => parseFaqFile(utf8('## A?\nB\n## C?\n\n## D?\nE'), 'markdown'), 'FAQ_INVALID', /^line 3: the question "C\?" has no answer/);
    rejects(() => parseFaqFile(utf8('## A?\nB\n##\nE'), 'markdown'), 'FAQ_INVALID', /^line 3: a heading with no question/);
    rejects(() => parseFaqFile(utf8('Just prose, no headings.\n'), 'markdown'), 'FAQ_EMPTY', /heading/);
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
      () => parseFaqFile(utf8(text), 'csv'),
      'FAQ_DUPLICATE',
      /^line 4: "how do i reset my PASSWORD" repeats the question "How do I reset my password\?" of line 2/,
    );
    assert.equal(error.line, 4);
  });

  it('reports an alternate phrasing that repeats another entry\'s question, naming both', () => {
    const text = 'question,answer,alternates\nHow do I cancel?,Settings.,"stop paying\nend my sub"\nHow do I pause?,Pause it.,"End my sub"\n';
    const error = rejects(
      () => parseFaqFile(utf8(text), 'csv'),
      'FAQ_DUPLICATE',
      /^line 4: the alternate "End my sub" of "How do I pause\?" repeats the alternate "end my sub" of "How do I cancel\?" of line 2/,
    );
    assert.equal(error.line, 4);
  });

  it('drops blank and repeated alternates and the question itself; refuses alternates that are not text', () => {
    const [record] = parse(JSON.stringify([{ question: 'How do I cancel?', answer: 'A.', alternates: ['how do i cancel', ' stop  paying ', '', 'Stop paying?'] }]), 'json');
    assert.deepEqual(record.alternates, ['stop paying']);
    rejects(() => parseFaqFile(utf8(JSON.stringify([{ question: 'Q?', answer: 'A.', alternates: [3] }])), 'json'), 'FAQ_INVALID', /alternates must be a list of text/);
  });

  it('reports two entries with one id', () => {
    rejects(() => parseFaqFile(utf8('id,question,answer\nx,A?,B\nx,C?,D\n'), 'csv'), 'FAQ_DUPLICATE', /^line 3: the id "x" is already used by "A\?" on line 2/);
  });
});

describe('files that are not FAQ text', () => {
  it('refuses an empty file and a blank one', () => {
    for (const format of FAQ_FORMATS) {
      rejects(() => parseFaqFile(new Uint8Array(0), format), 'FAQ_EMPTY', /^the file is empty$/);
      rejects(() => parseFaqFile(utf8(' \n\t\r\n'), format), 'FAQ_EMPTY', /blank/);
    }
  });

  it('refuses a binary file', () => {
    const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]);
    rejects(() => parseFaqFile(png, 'csv'), 'FAQ_NOT_TEXT', /looks binary \(a NUL byte at byte 8\)/);
  });

  it('refuses text that is not UTF-8, naming the line', () => {
    const latin1 = Buffer.from('question,answer\nCaf\xe9?,Yes\n', 'latin1');
    const error = rejects(() => parseFaqFile(latin1, 'csv'), 'FAQ_NOT_TEXT', /^line 2: the file is not UTF-8 text \(byte 0xe9 at byte 19\)/);
    assert.equal(error.line, 2);
    rejects(() => parseFaqFile(Uint8Array.from([0x41, 0xc0, 0xaf]), 'csv'), 'FAQ_NOT_TEXT', /byte 0xc0 at byte 1/);
    rejects(() => parseFaqFile(Uint8Array.from([0x41, 0xed, 0xa0, 0x80]), 'csv'), 'FAQ_NOT_TEXT', /byte 0xed at byte 1/);
    rejects(() => parseFaqFile(Buffer.from('\ufeffquestion,answer', 'utf16le'), 'csv'), 'FAQ_NOT_TEXT', /UTF-16/);
  });

  it('reads a UTF-8 byte order mark as nothing', () => {
    assert.deepEqual(parse('\ufeffquestion,answer\nA?,B\n', 'csv'), [{ question: 'A?', answer: 'B' }]);
  });

  it('refuses a file one byte over the limit before looking at its bytes', () => {
    const tooLarge = new Uint8Array(MAX_FAQ_FILE_BYTES + 1).fill(0xff);
    rejects(() => parseFaqFile(tooLarge, 'json'), 'FAQ_TOO_LARGE', /^the file is 50\.00 MB; FAQ files can be at most 50 MB$/);
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
