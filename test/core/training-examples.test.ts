import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FaqPassage, formatPrompt } from '../../src/core/prompt-format.js';
import { type ExampleOptions, faqTrainingExamples, questionVariants } from '../../src/core/training-examples.js';
import { type Tokenizer, loadTokenizer, writeGpt2TokenizerFiles } from '../../src/model/tokenizer.js';

const ENTRIES: FaqPassage[] = [
  { question: 'How do I reset my password?', answer: 'Open Settings, then Security, and press Reset password.' },
  { question: 'Where is the office?', answer: 'On the third floor of the Harbour building, room 301.' },
  { question: 'What are the opening hours?', answer: 'Monday to Friday, 9:00 to 17:30.' },
  { question: 'How can I export my data?', answer: 'Use /export in any channel; a zip file arrives by direct message.' },
  { question: 'Who do I ask about invoices?', answer: 'Write to billing@example.com with the invoice number.' },
  { question: 'Is there a mobile app?', answer: 'Yes, for iOS and Android, under the name Tunebot.' },
];
const INSTRUCTIONS = 'You answer questions about the company from the FAQ below.';

let dir: string;
let tokenizer: Tokenizer;
const countTokens = (text: string) => tokenizer.encode(text).length;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tunebot-examples-'));
  await writeGpt2TokenizerFiles(dir, 128);
  tokenizer = await loadTokenizer(dir);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(overrides: Partial<ExampleOptions> = {}): ExampleOptions {
  return { instructions: INSTRUCTIONS, passages: 3, askings: 3, seed: 7, promptBudget: 200, countTokens, ...overrides };
}

/** Reads a prompt back into its parts, failing on any line that is not in the prompt format. */
function parsePrompt(prompt: string): { instructions: string; faq: FaqPassage[]; message: string } {
  const lines = prompt.split('\n');
  assert.equal(lines.at(-1), 'Bot:', prompt);
  const user = lines.at(-2) ?? '';
  assert.ok(user.startsWith('User: '), prompt);
  const faq: FaqPassage[] = [];
  for (let i = 1; i < lines.length - 2; i += 2) {
    assert.ok(lines[i].startsWith('Q: ') && lines[i + 1].startsWith('A: '), `line ${i} of:\n${prompt}`);
    faq.push({ question: lines[i].slice(3), answer: lines[i + 1].slice(3) });
  }
  const parsed = { instructions: lines[0], faq, message: user.slice(6) };
  assert.equal(formatPrompt({ ...parsed, history: [] }), prompt);
  return parsed;
}

/** Which entry each example teaches, in the order faqTrainingExamples builds them. */
function askingsOf(askings: number): { entry: FaqPassage; asked: string }[] {
  return ENTRIES.flatMap((entry) => [entry.question, ...questionVariants(entry.question)].slice(0, askings).map((asked) => ({ entry, asked })));
}

describe('faqTrainingExamples', () => {
  it('asks every entry by its question and its first variants, in the prompt format, with the answer as completion', () => {
    const examples = faqTrainingExamples(ENTRIES, options());
    const expected = askingsOf(3);
    assert.equal(examples.length, ENTRIES.length * 3);
    examples.forEach((example, i) => {
      const { entry, asked } = expected[i];
      const parsed = parsePrompt(example.prompt);
      assert.equal(parsed.instructions, INSTRUCTIONS);
      assert.equal(parsed.message, asked);
      assert.equal(example.completion, ` ${entry.answer}`);
      assert.ok(countTokens(example.prompt) <= 200, `${countTokens(example.prompt)} tokens`);
      // The right passage among distinct distractors from the same FAQ.
      assert.equal(parsed.faq.length, 3);
      assert.equal(parsed.faq.filter((passage) => passage.question === entry.question && passage.answer === entry.answer).length, 1);
      assert.equal(new Set(parsed.faq.map((passage) => passage.question)).size, 3);
      for (const passage of parsed.faq) assert.ok(ENTRIES.some((known) => known.question === passage.question && known.answer === passage.answer));
    });
  });

  it('puts the right passage at varying places', () => {
    const examples = faqTrainingExamples(ENTRIES, options());
    const expected = askingsOf(3);
    const places = examples.map((example, i) => parsePrompt(example.prompt).faq.findIndex((passage) => passage.question === expected[i].entry.question));
    assert.deepEqual([...new Set(places)].sort(), [0, 1, 2]);
  });

  it('keeps the right passage and drops distractors when the budget is tight', () => {
    const tightest = Math.max(
      ...askingsOf(3).map(({ entry, asked }) => countTokens(formatPrompt({ instructions: INSTRUCTIONS, faq: [entry], history: [], message: asked }))),
    );
    const examples = faqTrainingExamples(ENTRIES, options({ promptBudget: tightest }));
    const expected = askingsOf(3);
    let cut = 0;
    examples.forEach((example, i) => {
      const parsed = parsePrompt(example.prompt);
      assert.ok(countTokens(example.prompt) <= tightest, `${countTokens(example.prompt)} > ${tightest} tokens:\n${example.prompt}`);
      assert.ok(parsed.faq.some((passage) => passage.question === expected[i].entry.question), example.prompt);
      assert.equal(parsed.message, expected[i].asked);
      if (parsed.faq.length < 3) cut++;
    });
    assert.ok(cut > 0, 'the budget was meant to cut some distractors');
  });

  it('gives the same examples for the same seed and another order for another seed', () => {
    const first = faqTrainingExamples(ENTRIES, options({ seed: 11 }));
    assert.deepEqual(faqTrainingExamples(ENTRIES, options({ seed: 11 })), first);
    assert.notDeepEqual(faqTrainingExamples(ENTRIES, options({ seed: 12 })), first);
  });

  it('asks at least the question itself, and distractors are never more than the FAQ has', () => {
    const examples = faqTrainingExamples(ENTRIES.slice(0, 2), options({ askings: 0, passages: 5 }));
    assert.equal(examples.length, 2);
    for (const example of examples) assert.equal(parsePrompt(example.prompt).faq.length, 2);
    assert.equal(parsePrompt(examples[0].prompt).message, ENTRIES[0].question);
  });
});

describe('questionVariants', () => {
  it('gives distinct rewordings, never the question itself', () => {
    for (const question of [...ENTRIES.map((entry) => entry.question), 'reset password', 'Reset password', 'How should we deploy it?']) {
      const variants = questionVariants(question);
      assert.ok(variants.length >= 3, `${question}: ${variants.join(' | ')}`);
      assert.equal(new Set(variants).size, variants.length, variants.join(' | '));
      assert.ok(!variants.includes(question), `${question} is among its own variants`);
      for (const variant of variants) assert.ok(variant.trim().length > 0);
    }
  });

  it('rewords "how do I" questions as "how to", and keeps the words of the question', () => {
    const variants = questionVariants('How do I reset my password?');
    assert.ok(variants.includes('how to reset my password'), variants.join(' | '));
    for (const variant of variants) assert.match(variant.toLowerCase(), /reset my password/);
  });

  it('leaves the variants after the trained ones out of training, for the gate to hold out', () => {
    const trainedVariants = 1;
    const messages = new Set(faqTrainingExamples(ENTRIES, options({ askings: 1 + trainedVariants })).map((example) => parsePrompt(example.prompt).message));
    for (const entry of ENTRIES) {
      const variants = questionVariants(entry.question);
      assert.ok(messages.has(variants[0]));
      for (const heldOut of variants.slice(trainedVariants)) assert.ok(!messages.has(heldOut), `"${heldOut}" was trained on`);
    }
  });
});
