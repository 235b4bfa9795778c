import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaqStore } from '../../../src/core/faq/faq-store.js';
import { heldOutQuestions } from '../../../src/core/fine-tuning/held-out-questions.js';
import { formatPrompt } from '../../../src/core/conversation/prompt-format.js';
import { type GateScore, type GateSettings, type Tally, describeScore, gateDecision, scoreModel } from '../../../src/core/fine-tuning/regression-gate.js';
import { MapStore } from '../../helpers/map-store.js';

const ENTRIES = [
  { question: 'How do I reset my password?', answer: 'Open Settings, then Security, and press Reset password.', alternates: ['forgot my pw', 'lost my password'] },
  { question: 'How do I change my password?', answer: 'Settings, Security, Change password: type the old one, then the new one twice.', alternates: [] },
  { question: 'Where is the office?', answer: 'On the third floor of the Harbour building.', alternates: ['what is your address', 'which floor are you on'] },
  { question: 'What are the opening hours?', answer: 'Monday to Friday, 9:00 to 17:30.', alternates: [] },
  { question: 'How can I export my data?', answer: 'Use /export in any channel.', alternates: [] },
];

async function seededFaq(entries = ENTRIES): Promise<FaqStore> {
  // WordNet off: these tests count the gate's answers, not how far retrieval reaches.
  const faq = FaqStore.forScope(new MapStore(), 'gate-test', { wordnet: null });
  for (const { question, answer, alternates } of entries) {
    const added = await faq.add(question, answer);
    for (const alternate of alternates) await faq.linkAlternate(added.id, alternate);
  }
  return faq;
}

/** Never confident, everything relevant: every question goes to the model, which picks among the passages. */
const MODEL_PATH: GateSettings = { topK: 3, confidentMatch: 1.01, relevantMatch: 0, instructions: 'Answer from the FAQ.', heldOutQuestions: 2 };
const countWords = (text: string) => text.split(/\s+/u).length;

/** Reads the prompt the gate gave the model: its passages and the question. */
function readPrompt(prompt: string): { passages: { question: string; answer: string }[]; message: string } {
  const lines = prompt.split('\n');
  assert.equal(lines[0], MODEL_PATH.instructions);
  assert.equal(lines.at(-1), 'Bot:');
  const passages = [];
  for (let i = 1; i < lines.length - 2; i += 2) passages.push({ question: lines[i].replace(/^Q: /u, ''), answer: lines[i + 1].replace(/^A: /u, '') });
  return { passages, message: (lines.at(-2) ?? '').replace(/^User: /u, '') };
}

type Verdict = 'correct' | 'wrong' | 'abstained';

function tally(correct: number, wrong: number, abstained: number): Tally {
  return { asked: correct + wrong + abstained, correct, wrong, abstained };
}

function score(heldOut: Tally, originals: Tally = tally(10, 0, 0)): GateScore {
  return { originals, heldOut };
}

describe('gateDecision', () => {
  it('auto promotes a candidate that answers as many right and no more wrong, and says the figures', () => {
    const live = score(tally(38, 2, 5));
    const report = gateDecision(score(tally(40, 2, 3)), live, 'auto');
    assert.equal(report.promote, true);
    assert.equal(
      report.reason,
      'it answers 40 right, 2 wrong, 3 abstained of 45 held-out questions and 10 right, 0 wrong, 0 abstained of 10 FAQ questions, ' +
        'against 38 right, 2 wrong, 5 abstained of 45 held-out questions and 10 right, 0 wrong, 0 abstained of 10 FAQ questions for the live model',
    );
    assert.equal(gateDecision(live, live, 'auto').promote, true, 'an equal candidate');
    assert.deepEqual([report.candidate, report.current], [score(tally(40, 2, 3)), live]);
  });

  it('never promotes a candidate that answers more questions wrong, however many more it answers right', () => {
    const report = gateDecision(score(tally(44, 1, 0)), score(tally(30, 0, 15)), 'auto');
    assert.equal(report.promote, false);
    assert.match(report.reason, /^it answers more questions wrong than the live model \(1 against 0\); it answers 44 right, 1 wrong, 0 abstained of 45 held-out questions .* kept but not promoted$/);
    // A wrong FAQ question counts as much as a wrong held-out one.
    assert.equal(gateDecision(score(tally(40, 0, 5), tally(9, 1, 0)), score(tally(40, 0, 5)), 'auto').promote, false);
  });

  it('counts abstentions apart from wrong answers: abstaining more is no reason to hold, answering fewer right is', () => {
    assert.equal(gateDecision(score(tally(40, 0, 5)), score(tally(40, 3, 2)), 'auto').promote, true, 'fewer wrong, more abstained');
    const fewerRight = gateDecision(score(tally(35, 0, 10)), score(tally(40, 0, 5)), 'auto');
    assert.equal(fewerRight.promote, false);
    assert.match(fewerRight.reason, /^it answers fewer questions right than the live model \(45 against 50\);/);
  });

  it('auto promotes when there is no live model to compare with', () => {
    const report = gateDecision(score(tally(0, 5, 0)), null, 'auto');
    assert.equal(report.promote, true);
    assert.equal(report.current, null);
    assert.equal(report.reason, 'there is no live model to compare with; it answers 0 right, 5 wrong, 0 abstained of 5 held-out questions and 10 right, 0 wrong, 0 abstained of 10 FAQ questions');
  });

  it('force promotes a worse candidate; hold keeps a better one back; both say the figures', () => {
    const forced = gateDecision(score(tally(1, 9, 0)), score(tally(9, 0, 1)), 'force');
    assert.equal(forced.promote, true);
    assert.match(forced.reason, /^the gate is set to force promotion; it answers 1 right, 9 wrong/);
    const held = gateDecision(score(tally(9, 0, 1)), score(tally(1, 9, 0)), 'hold');
    assert.equal(held.promote, false);
    assert.match(held.reason, /^the gate is set to hold new versions; it answers 9 right.*; promote one with \/model use$/);
    assert.equal(gateDecision(score(tally(1, 0, 0)), null, 'hold').promote, false);
  });
});

describe('scoreModel', () => {
  it('asks every question and the held-out ones through the answer policy, and counts right, wrong and abstained per set', async () => {
    const faq = await seededFaq();
    const entries = await faq.entries();
    const expectedOf = new Map<string, (typeof ENTRIES)[number]>();
    for (const [i, entry] of entries.entries()) for (const question of [entry.question, ...heldOutQuestions(entry, MODEL_PATH.heldOutQuestions)]) expectedOf.set(question, ENTRIES[i]);
    // The model knows every FAQ question and the office; of the other held-out questions it follows
    // retrieval's best hit when that is another entry, gives the password entries each other's
    // answer where it is shown, and rambles (no passage's answer) on the rest. It notes what each reply should count as; the gate must count the same.
    const meant = new Map<string, Verdict>();
    const generate = async (prompt: string) => {
      assert.ok(countWords(prompt) <= 120, prompt);
      const { passages, message } = readPrompt(prompt);
      const expected = expectedOf.get(message);
      assert.ok(expected, `the gate asked "${message}", which is no question of the FAQ's`);
      const shown = (question: string) => passages.find((passage) => passage.question === question)?.answer;
      const [verdict, reply] = ((): [Verdict, string | undefined] => {
        if (message === expected.question || expected === ENTRIES[2]) return ['correct', shown(expected.question)];
        // Where retrieval ranks another entry first, the model follows it: a wrong answer the gate must count.
        if (passages[0] && passages[0].question !== expected.question) return ['wrong', passages[0].answer];
        if (expected === ENTRIES[0]) return ['wrong', shown(ENTRIES[1].question)];
        if (expected === ENTRIES[1]) return ['wrong', shown(ENTRIES[0].question)];
        return ['abstained', undefined];
      })();
      // A pick that is not retrieval's best hit (the first passage shown) is not given: abstained.
      meant.set(message, reply === undefined || reply !== passages[0]?.answer ? 'abstained' : verdict);
      return reply === undefined ? 'Please ask the front desk about that, they know.' : ` ${reply} `;
    };
    const result = await scoreModel(faq, entries, generate, MODEL_PATH, 120, countWords);
    // A question retrieval finds nothing for never reaches the model: abstained.
    const expectedTally = (questions: string[]) => {
      const verdicts = questions.map((question) => meant.get(question) ?? 'abstained');
      const count = (kind: Verdict) => verdicts.filter((verdict) => verdict === kind).length;
      return tally(count('correct'), count('wrong'), count('abstained'));
    };
    assert.deepEqual(result, {
      originals: expectedTally(entries.map((entry) => entry.question)),
      heldOut: expectedTally(entries.flatMap((entry) => heldOutQuestions(entry, MODEL_PATH.heldOutQuestions))),
    });
    assert.deepEqual(result.originals, tally(5, 0, 0));
    assert.deepEqual(heldOutQuestions(entries[0], 0), ['lost my password'], 'the second alternate is held out');
    assert.equal(result.heldOut.asked, 2 + 5 * 2, 'two held-out alternates and two noisy questions per entry');
    assert.ok(result.heldOut.correct >= 3 && result.heldOut.abstained >= 4, JSON.stringify(result.heldOut));
  });

  it("counts as wrong the model's answer that confirms retrieval's wrong best hit", async () => {
    const faq = await seededFaq([
      { question: 'How do I cancel my membership?', answer: 'Account, Membership, Cancel.', alternates: ['stop paying', 'quit the gym pass'] },
      { question: 'Where is the gym?', answer: 'Behind the station.', alternates: [] },
    ]);
    assert.deepEqual(heldOutQuestions((await faq.entries())[0], 0), ['quit the gym pass']);
    const followsRetrieval = async (prompt: string) => readPrompt(prompt).passages[0]?.answer ?? '';
    const result = await scoreModel(faq, await faq.entries(), followsRetrieval, { ...MODEL_PATH, heldOutQuestions: 0 }, 120, countWords);
    assert.deepEqual(result, { originals: tally(2, 0, 0), heldOut: tally(0, 1, 0) });
  });

  it('takes a reply that stitches two passages together as an abstention, not an answer', async () => {
    const faq = await seededFaq(ENTRIES.slice(0, 2));
    const generate = async (prompt: string) =>
      readPrompt(prompt)
        .passages.map((passage) => passage.answer)
        .join(' ');
    const result = await scoreModel(faq, await faq.entries(), generate, { ...MODEL_PATH, heldOutQuestions: 0 }, 120, countWords);
    assert.deepEqual(result.originals, tally(0, 0, 2));
  });

  it('gives the model the retrieved passages and fits the prompt into the budget', async () => {
    const faq = await seededFaq();
    const prompts: string[] = [];
    const generate = async (prompt: string) => {
      prompts.push(prompt);
      return '';
    };
    const settings = { ...MODEL_PATH, heldOutQuestions: 0 };
    const passage = (index: number) => `Q: ${ENTRIES[index].question}\nA: ${ENTRIES[index].answer}`;
    const roomy = await scoreModel(faq, await faq.entries(), generate, settings, 1000, countWords);
    assert.deepEqual(roomy.originals, tally(0, 0, 5));
    assert.ok(prompts[0].includes(passage(0)), prompts[0]);

    prompts.length = 0;
    const budget = countWords(formatPrompt({ instructions: settings.instructions, faq: [ENTRIES[3]], history: [], message: ENTRIES[3].question }));
    await scoreModel(faq, [(await faq.entries())[3]], generate, settings, budget, countWords);
    assert.equal(prompts.length, 1);
    assert.ok(countWords(prompts[0]) <= budget, prompts[0]);
    assert.ok(prompts[0].includes(passage(3)), prompts[0]);
  });

  it('takes a confident match from the FAQ without asking the model, and asks held-out alternates of an FAQ that does not know them', async () => {
    const faq = await seededFaq();
    const asked: string[] = [];
    const generate = async (prompt: string) => {
      asked.push(readPrompt(prompt).message);
      return '';
    };
    const result = await scoreModel(faq, await faq.entries(), generate, { ...MODEL_PATH, confidentMatch: 0.99, heldOutQuestions: 0 }, 120, countWords);
    // The FAQ questions are certain; the held-out alternates, were retrieval to know them, would be too.
    assert.deepEqual(result, { originals: tally(5, 0, 0), heldOut: tally(0, 0, 2) });
    assert.deepEqual(asked, ['lost my password', 'which floor are you on']);
    assert.equal((await faq.search('lost my password', 1))[0].confidence, 1, 'the engine knows them word for word');
  });

  it('counts a question that retrieval finds nothing for as abstained', async () => {
    const faq = await seededFaq();
    const stranger = { id: 'x1', question: 'Quantum chromodynamics lattice?', answer: 'Gluons.', tags: [], alternates: [], updatedAt: new Date(0).toISOString() };
    const generate = async (): Promise<string> => 'Gluons.';
    const result = await scoreModel(faq, [stranger], generate, { ...MODEL_PATH, relevantMatch: 0.1, heldOutQuestions: 0 }, 120, countWords);
    assert.deepEqual(result, { originals: tally(0, 0, 1), heldOut: tally(0, 0, 0) });
  });

  it('scores an empty FAQ as nothing asked', async () => {
    const faq = FaqStore.forScope(new MapStore(), 'empty', { wordnet: null });
    assert.deepEqual(await scoreModel(faq, [], async () => '', MODEL_PATH, 120, countWords), { originals: tally(0, 0, 0), heldOut: tally(0, 0, 0) });
    assert.equal(describeScore({ originals: tally(0, 0, 0), heldOut: tally(0, 0, 0) }), '0 right, 0 wrong, 0 abstained of 0 held-out questions and 0 right, 0 wrong, 0 abstained of 0 FAQ questions');
  });
});
