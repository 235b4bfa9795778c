import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type FaqEntry, normalizeQuestion, phrasings } from '../../../src/core/faq/entry.js';
import { heldOutQuestions, splitAlternates } from '../../../src/core/fine-tuning/held-out-questions.js';
import { type FaqPassage, formatPrompt } from '../../../src/core/conversation/prompt-format.js';
import { Bm25Index } from '../../../src/core/retrieval/bm25.js';
import { Lexicon } from '../../../src/core/retrieval/lexicon.js';
import { type ExampleOptions, faqTrainingExamples } from '../../../src/core/fine-tuning/training-examples.js';
import type { Example } from '../../../src/model/training/data.js';
import { type Tokenizer, loadTokenizer, writeGpt2TokenizerFiles } from '../../../src/model/files/tokenizer.js';

function entry(id: string, question: string, answer: string, alternates: string[] = []): FaqEntry {
  return { id, question, answer, tags: [], alternates, updatedAt: new Date(0).toISOString() };
}

/** A notes app's FAQ with neighbours that share words (cancel/pay a subscription, 2fa/lost phone) and alternates in other words. */
const ENTRIES: FaqEntry[] = [
  entry('cancel', 'How do I cancel my subscription?', 'Open Billing and press Cancel; the plan ends with the period.', ['how can i stop paying', 'end my plan please', 'I want to quit the paid plan']),
  entry('pay', 'How do I pay for my subscription?', 'By card or PayPal under Billing, then Payment method.', ['which cards do you take', 'can I pay with paypal']),
  entry('refund', 'Do you offer refunds?', 'Yes, within 14 days of a payment: write to billing@example.com.', ['charged twice for my subscription', 'can I get my money back']),
  entry('reset', 'How do I reset my password?', 'Open Settings, then Security, and press Reset password.', [
    'forgot my pw',
    'cant log in, lost password',
    'reset pw link not working',
    'new password please',
    'password reset email never came',
  ]),
  entry('2fa', 'How do I turn on two-factor authentication?', 'Settings, Security, Two-factor: scan the code with an authenticator app.', ['protect my account with a code on my phone']),
  entry('lost-phone', 'I lost the phone with my authenticator app, what now?', 'Use one of your backup codes, then set up two-factor again.', ['my phone with the authenticator was stolen', 'lost 2fa device']),
  entry('office', 'Where is the office?', 'On the third floor of the Harbour building, room 301.'),
  entry('export', 'How can I export my notes?', 'Settings, Data, Export: a zip file arrives by email.'),
];
const INSTRUCTIONS = 'You answer questions about the notes app from the FAQ below.';

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
  return { instructions: INSTRUCTIONS, passages: 3, noisyQuestions: 3, heldOutQuestions: 2, seed: 7, promptBudget: 400, countTokens, ...overrides };
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

/** Each example with the entry it teaches (the one whose answer is its completion) and its parsed prompt. */
function taught(examples: readonly Example[]): { entry: FaqEntry; message: string; faq: FaqPassage[] }[] {
  return examples.map((example) => {
    const entry = ENTRIES.find((candidate) => ` ${candidate.answer}` === example.completion);
    assert.ok(entry, `no entry answers ${example.completion}`);
    const { message, faq } = parsePrompt(example.prompt);
    return { entry, message, faq };
  });
}

const byId = (id: string) => ENTRIES.find((candidate) => candidate.id === id) as FaqEntry;

describe('splitAlternates', () => {
  it('holds out every third alternate from the second on, so 2 or more always keep one back', () => {
    const split = (count: number) => splitAlternates({ alternates: Array.from({ length: count }, (_, i) => `a${i}`) });
    assert.deepEqual(split(0), { trained: [], heldOut: [] });
    assert.deepEqual(split(1), { trained: ['a0'], heldOut: [] });
    assert.deepEqual(split(2), { trained: ['a0'], heldOut: ['a1'] });
    assert.deepEqual(split(5), { trained: ['a0', 'a2', 'a3'], heldOut: ['a1', 'a4'] });
    assert.deepEqual(split(8), { trained: ['a0', 'a2', 'a3', 'a5', 'a6'], heldOut: ['a1', 'a4', 'a7'] });
  });

  it('moves no alternate from one side to the other when one is linked later (appended)', () => {
    for (let count = 1; count < 12; count++) {
      const before = splitAlternates({ alternates: Array.from({ length: count }, (_, i) => `a${i}`) });
      const after = splitAlternates({ alternates: Array.from({ length: count + 1 }, (_, i) => `a${i}`) });
      for (const alternate of before.trained) assert.ok(after.trained.includes(alternate), `${alternate} of ${count}`);
      for (const alternate of before.heldOut) assert.ok(after.heldOut.includes(alternate), `${alternate} of ${count}`);
    }
  });
});

describe('heldOutQuestions', () => {
  it('asks the held-out alternates and noisy forms of the question, none a phrasing of the entry', () => {
    for (const faqEntry of ENTRIES) {
      const held = heldOutQuestions(faqEntry, 3);
      const alternates = splitAlternates(faqEntry).heldOut;
      assert.deepEqual(held.slice(0, alternates.length), alternates);
      const noisy = held.slice(alternates.length);
      assert.ok(noisy.length >= 1 && noisy.length <= 3, `${faqEntry.question}: ${noisy.join(' | ')}`);
      const keys = held.map(normalizeQuestion);
      assert.equal(new Set(keys).size, keys.length, held.join(' | '));
      for (const question of noisy) assert.ok(!phrasings(faqEntry).some((phrasing) => normalizeQuestion(phrasing) === normalizeQuestion(question)), question);
    }
  });

  it('asks an entry the same way whatever else the FAQ holds, and other ways with another count', () => {
    assert.deepEqual(heldOutQuestions(byId('reset'), 2), heldOutQuestions({ ...byId('reset') }, 2));
    assert.deepEqual(heldOutQuestions(byId('office'), 0), []);
    assert.equal(heldOutQuestions(byId('reset'), 0).length, 2, 'the held-out alternates alone');
  });
});

describe('faqTrainingExamples', () => {
  it('asks every entry by its question, its trained alternates and noisy forms, in the prompt format, with the answer as completion', () => {
    const examples = faqTrainingExamples(ENTRIES, options());
    const rows = taught(examples);
    for (const faqEntry of ENTRIES) {
      const messages = rows.filter((row) => row.entry === faqEntry).map((row) => row.message);
      const trainedPhrasings = [faqEntry.question, ...splitAlternates(faqEntry).trained];
      assert.deepEqual(messages.slice(0, trainedPhrasings.length), trainedPhrasings);
      const noisy = messages.slice(trainedPhrasings.length);
      assert.ok(noisy.length >= 2 && noisy.length <= 3, `${faqEntry.id}: ${noisy.join(' | ')}`);
      for (const question of noisy) assert.ok(!trainedPhrasings.some((phrasing) => normalizeQuestion(phrasing) === normalizeQuestion(question)), question);
      assert.equal(new Set(messages.map(normalizeQuestion)).size, messages.length, messages.join(' | '));
    }
    for (const { entry: faqEntry, faq } of rows) {
      // The right passage among distinct distractors from the same FAQ, each as the prompt shows it.
      assert.equal(faq.length, 3);
      assert.equal(faq.filter((passage) => passage.question === faqEntry.question && passage.answer === faqEntry.answer).length, 1);
      assert.equal(new Set(faq.map((passage) => passage.question)).size, 3);
      for (const passage of faq) assert.ok(ENTRIES.some((known) => known.question === passage.question && known.answer === passage.answer));
    }
    for (const example of examples) assert.ok(countTokens(example.prompt) <= 400, `${countTokens(example.prompt)} tokens`);
  });

  it('never trains on a held-out question: no held-out alternate anywhere in a prompt, no held-out noisy question asked', () => {
    for (const seed of [1, 2, 3]) {
      const examples = faqTrainingExamples(ENTRIES, options({ seed, noisyQuestions: 12 }));
      const asked = new Set(taught(examples).map((row) => normalizeQuestion(row.message)));
      let heldOut = 0;
      for (const faqEntry of ENTRIES) {
        for (const alternate of splitAlternates(faqEntry).heldOut) {
          heldOut++;
          for (const example of examples) assert.ok(!example.prompt.toLowerCase().includes(alternate.toLowerCase()), `"${alternate}" is in:\n${example.prompt}`);
        }
        for (const question of heldOutQuestions(faqEntry, 2)) assert.ok(!asked.has(normalizeQuestion(question)), `"${question}" was trained on (seed ${seed})`);
      }
      assert.equal(heldOut, 6, 'the FAQ holds out 6 alternates');
    }
  });

  it('shows the passage that shares the most words with what was asked among the distractors, and the rest at random', () => {
    const examples = faqTrainingExamples(ENTRIES, options({ noisyQuestions: 4 }));
    // The reference: BM25 over the passages as the prompt shows them, with nothing but words and stems.
    const index = new Bm25Index(
      ENTRIES.map((faqEntry) => ({ ...faqEntry, alternates: [] })),
      new Lexicon({ wordnet: null }),
    );
    let outranked = 0;
    const randomDistractors = new Set<string>();
    for (const { entry: faqEntry, message, faq } of taught(examples)) {
      const ranking = index.search(message, ENTRIES.length).map((hit) => hit.entry.id);
      const hardest = ranking.find((id) => id !== faqEntry.id);
      const shownIds = faq.map((passage) => ENTRIES.find((known) => known.question === passage.question)?.id);
      if (hardest) assert.ok(shownIds.includes(hardest), `"${message}" (${faqEntry.id}) is shown ${shownIds.join(', ')}, not ${hardest}`);
      // An entry that shares no word with the question is not ranked at all.
      const rank = (id: string) => (ranking.includes(id) ? ranking.indexOf(id) : ranking.length);
      if (hardest && rank(hardest) < rank(faqEntry.id)) outranked++;
      for (const id of shownIds) if (id !== faqEntry.id && id !== hardest) randomDistractors.add(id ?? '');
    }
    // Alternates in other words share more with a neighbour than with their own passage.
    assert.ok(outranked >= 6, `${outranked} questions whose right passage is not the one sharing the most words`);
    assert.ok(randomDistractors.size >= 5, `random distractors drawn from ${[...randomDistractors].join(', ')}`);
    const stopPaying = taught(examples).find((row) => row.message === 'how can i stop paying');
    assert.ok(stopPaying?.faq.some((passage) => passage.question === byId('pay').question), 'paying is shown beside paying for the subscription');
  });

  it('keeps the right passage first and drops distractors when the budget is tight', () => {
    const rows = taught(faqTrainingExamples(ENTRIES, options()));
    const tightest = Math.max(...rows.map(({ entry: faqEntry, message }) => countTokens(formatPrompt({ instructions: INSTRUCTIONS, faq: [faqEntry], history: [], message }))));
    const examples = faqTrainingExamples(ENTRIES, options({ promptBudget: tightest }));
    let cut = 0;
    taught(examples).forEach(({ entry: faqEntry, message, faq }, i) => {
      assert.ok(countTokens(examples[i].prompt) <= tightest, `${countTokens(examples[i].prompt)} > ${tightest} tokens:\n${examples[i].prompt}`);
      assert.ok(faq.some((passage) => passage.question === faqEntry.question), examples[i].prompt);
      assert.equal(message, rows[i].message);
      if (faq.length < 3) cut++;
    });
    assert.ok(cut > 0, 'the budget was meant to cut some distractors');
  });

  it('gives the same examples for the same seed and others for another seed', () => {
    const first = faqTrainingExamples(ENTRIES, options({ seed: 11 }));
    assert.deepEqual(faqTrainingExamples(ENTRIES, options({ seed: 11 })), first);
    assert.notDeepEqual(faqTrainingExamples(ENTRIES, options({ seed: 12 })), first);
  });

  it('with no noise asks the phrasings alone, and distractors are never more than the FAQ has', () => {
    const two = [byId('office'), byId('export')];
    const examples = faqTrainingExamples(two, options({ noisyQuestions: 0, passages: 5 }));
    assert.deepEqual(
      taught(examples).map((row) => row.message),
      two.map((faqEntry) => faqEntry.question),
    );
    for (const example of examples) assert.equal(parsePrompt(example.prompt).faq.length, 2);
    const alone = faqTrainingExamples([byId('office')], options({ noisyQuestions: 0 }));
    assert.deepEqual(
      alone.map((example) => parsePrompt(example.prompt).faq.length),
      [1],
    );
  });
});
