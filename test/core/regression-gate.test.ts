import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaqStore } from '../../src/core/faq/faq-store.js';
import { formatPrompt } from '../../src/core/prompt-format.js';
import { type GateScore, type GateSettings, gateDecision, scoreModel } from '../../src/core/regression-gate.js';
import { questionVariants } from '../../src/core/training-examples.js';
import { MapStore } from '../helpers/map-store.js';

const ENTRIES = [
  { question: 'How do I reset my password?', answer: 'Open Settings, then Security, and press Reset password.' },
  { question: 'Where is the office?', answer: 'On the third floor of the Harbour building.' },
  { question: 'What are the opening hours?', answer: 'Monday to Friday, 9:00 to 17:30.' },
  { question: 'How can I export my data?', answer: 'Use /export in any channel.' },
];

async function seededFaq(): Promise<FaqStore> {
  const faq = FaqStore.forScope(new MapStore(), 'gate-test');
  for (const { question, answer } of ENTRIES) await faq.add(question, answer);
  return faq;
}

/** Never confident, everything relevant: every asking goes to the model. */
const MODEL_PATH: GateSettings = { topK: 3, confidentMatch: 1.01, relevantMatch: 0, instructions: 'Answer from the FAQ.', trainedVariants: 1, heldOutVariants: 2 };
const countWords = (text: string) => text.split(/\s+/u).length;

function score(value: number): GateScore {
  return { questions: 10, correct: Math.round(value * 10), heldOut: 0, heldOutCorrect: 0, score: value };
}

describe('gateDecision', () => {
  it('auto promotes an equal or better candidate and holds a worse one', () => {
    assert.equal(gateDecision(score(0.6), score(0.6), 'auto').promote, true);
    assert.equal(gateDecision(score(0.7), score(0.6), 'auto').promote, true);
    const worse = gateDecision(score(0.5), score(0.6), 'auto');
    assert.equal(worse.promote, false);
    assert.match(worse.reason, /50%.*worse.*60%/);
    assert.deepEqual([worse.candidate, worse.current], [score(0.5), score(0.6)]);
  });

  it('auto promotes when there is no live model to compare with', () => {
    const report = gateDecision(score(0), null, 'auto');
    assert.equal(report.promote, true);
    assert.equal(report.current, null);
    assert.match(report.reason, /no live model/);
  });

  it('force promotes a worse candidate; hold keeps a better one back', () => {
    assert.equal(gateDecision(score(0.1), score(0.9), 'force').promote, true);
    const held = gateDecision(score(0.9), score(0.1), 'hold');
    assert.equal(held.promote, false);
    assert.match(held.reason, /\/model use/);
    assert.equal(gateDecision(score(1), null, 'hold').promote, false);
  });
});

describe('scoreModel', () => {
  it('counts FAQ questions and held-out variants, asking the model in the prompt format', async () => {
    const faq = await seededFaq();
    const entries = await faq.entries();
    const heldOutOf = (question: string) => questionVariants(question).slice(MODEL_PATH.trainedVariants, MODEL_PATH.trainedVariants + MODEL_PATH.heldOutVariants);
    // Right for every question as asked; for rewordings only of the first two entries.
    const knowsRewordings = new Set(ENTRIES.slice(0, 2).flatMap((entry) => heldOutOf(entry.question)));
    const asked: string[] = [];
    const generate = async (prompt: string) => {
      assert.ok(countWords(prompt) <= 120, prompt);
      const lines = prompt.split('\n');
      assert.equal(lines[0], MODEL_PATH.instructions);
      assert.equal(lines.at(-1), 'Bot:');
      const message = (lines.at(-2) ?? '').replace(/^User: /u, '');
      asked.push(message);
      const entry = ENTRIES.find((candidate) => candidate.question === message || heldOutOf(candidate.question).includes(message));
      if (!entry) return 'I do not know.';
      // Case and a closing mark do not make an answer wrong.
      if (entry.question === message) return `${entry.answer.toUpperCase().replace(/\.$/u, '')}!`;
      return knowsRewordings.has(message) ? ` ${entry.answer} ` : 'Ask the front desk.';
    };
    const result = await scoreModel(faq, entries, generate, MODEL_PATH, 120, countWords);
    assert.deepEqual(result, { questions: 4, correct: 4, heldOut: 8, heldOutCorrect: 4, score: 8 / 12 });
    assert.deepEqual(asked, ENTRIES.flatMap((entry) => [entry.question, ...heldOutOf(entry.question)]));
  });

  it('gives the model the retrieved passages and fits the prompt into the budget', async () => {
    const faq = await seededFaq();
    const prompts: string[] = [];
    const generate = async (prompt: string) => {
      prompts.push(prompt);
      return '';
    };
    const settings = { ...MODEL_PATH, heldOutVariants: 0 };
    const passage = (index: number) => `Q: ${ENTRIES[index].question}\nA: ${ENTRIES[index].answer}`;
    const roomy = await scoreModel(faq, await faq.entries(), generate, settings, 1000, countWords);
    assert.deepEqual(roomy, { questions: 4, correct: 0, heldOut: 0, heldOutCorrect: 0, score: 0 });
    assert.ok(prompts[0].includes(passage(0)), prompts[0]);

    prompts.length = 0;
    const budget = countWords(formatPrompt({ instructions: settings.instructions, faq: [ENTRIES[1]], history: [], message: ENTRIES[1].question }));
    await scoreModel(faq, [(await faq.entries())[1]], generate, settings, budget, countWords);
    assert.equal(prompts.length, 1);
    assert.ok(countWords(prompts[0]) <= budget, prompts[0]);
    assert.ok(prompts[0].includes(passage(1)), prompts[0]);
  });

  it('takes a confident match from the FAQ without asking the model', async () => {
    const faq = await seededFaq();
    const generate = async (prompt: string): Promise<string> => assert.fail(`the model was asked:\n${prompt}`);
    const result = await scoreModel(faq, await faq.entries(), generate, { ...MODEL_PATH, confidentMatch: 0.99, heldOutVariants: 0 }, 120, countWords);
    assert.deepEqual(result, { questions: 4, correct: 4, heldOut: 0, heldOutCorrect: 0, score: 1 });
  });

  it('counts a question with nothing relevant in the FAQ as wrong', async () => {
    const faq = await seededFaq();
    const stranger = { id: 'x1', question: 'Quantum chromodynamics lattice?', answer: 'Gluons.', tags: [], alternates: [], updatedAt: new Date(0).toISOString() };
    const generate = async (): Promise<string> => 'Gluons.';
    const result = await scoreModel(faq, [stranger], generate, { ...MODEL_PATH, relevantMatch: 0.1, heldOutVariants: 0 }, 120, countWords);
    assert.deepEqual(result, { questions: 1, correct: 0, heldOut: 0, heldOutCorrect: 0, score: 0 });
  });

  it('scores an empty FAQ as 1, so an empty gate never blocks', async () => {
    const faq = FaqStore.forScope(new MapStore(), 'empty');
    assert.deepEqual(await scoreModel(faq, [], async () => '', MODEL_PATH, 120, countWords), { questions: 0, correct: 0, heldOut: 0, heldOutCorrect: 0, score: 1 });
  });
});
