import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answerQuestion, certaintyOf, decideAnswer } from '../../../src/core/conversation/answer-policy.js';
import { FaqStore } from '../../../src/core/faq/faq-store.js';
import { GROUNDED_F1, groundedEntry, termF1 } from '../../../src/core/conversation/grounding.js';
import { MapStore } from '../../helpers/map-store.js';

const ENTRIES = [
  { question: 'How do I cancel my membership?', answer: 'Open Account, choose Membership and press Cancel. You can ride until the paid period ends.' },
  { question: 'Can I pause my membership?', answer: 'Yes, for up to three months a year: Account, Membership, Pause.' },
  { question: 'Where do I return a bike?', answer: 'Push it into any free dock until the light turns green.' },
  { question: 'Is there a student discount?', answer: 'Students pay half price with a valid student card.' },
];

async function seededFaq(): Promise<FaqStore> {
  const faq = FaqStore.forScope(new MapStore(), 'policy-test', { wordnet: null });
  for (const { question, answer } of ENTRIES) await faq.add(question, answer);
  return faq;
}

const THRESHOLDS = { topK: 3, confidentMatch: 0.6, relevantMatch: 0.1 };

describe('termF1', () => {
  it('is 2 * shared / (|a| + |b|) over bags of terms, repeats counted once each', () => {
    // a: [open, dock, dock], b: [dock, green]: one "dock" is shared -> 2 * 1 / 5.
    assert.equal(termF1(['open', 'dock', 'dock'], ['dock', 'green']), 0.4);
    assert.equal(termF1(['a', 'b'], ['b', 'a']), 1);
    assert.equal(termF1([], ['a']), 0);
  });
});

describe('groundedEntry', () => {
  const passages = ENTRIES.map((entry, i) => ({ id: `q${i + 1}`, ...entry }));

  it("takes a reply that repeats one passage's answer, even with small slips", () => {
    assert.equal(groundedEntry(passages[2].answer, passages)?.id, 'q3');
    assert.equal(groundedEntry('push it into any free dock until the light turns green!', passages)?.id, 'q3');
  });

  it('refuses a reply that stitches two answers together, or says what no passage says', () => {
    const stitched = `${passages[0].answer.split('. ')[0]}. ${passages[1].answer}`;
    assert.equal(groundedEntry(stitched, passages), null);
    assert.equal(groundedEntry('Bikes can be rented by the hour at the harbour kiosk.', passages), null);
    assert.equal(groundedEntry('', passages), null);
  });

  it('refuses a reply that matches its best passage under the F1 bar', () => {
    const half = passages[3].answer.split(' ').slice(0, 4).join(' ');
    assert.ok(termF1(half.toLowerCase().split(' '), passages[3].answer.toLowerCase().split(' ')) < GROUNDED_F1);
    assert.equal(groundedEntry(half, passages), null);
  });
});

describe('certaintyOf', () => {
  it("is the best hit's confidence times the square root of its lead over the second", () => {
    assert.equal(certaintyOf([{ score: 4, confidence: 0.9 }, { score: 3, confidence: 0.8 }]), 0.9 * Math.sqrt(0.25));
    assert.equal(certaintyOf([{ score: 4, confidence: 0.9 }]), 0.9);
    assert.equal(certaintyOf([{ score: 2, confidence: 0.7 }, { score: 2, confidence: 0.7 }]), 0);
    assert.equal(certaintyOf([]), 0);
  });
});

describe('answerQuestion', () => {
  it('answers a question asked word for word from the FAQ without asking the model', async () => {
    const faq = await seededFaq();
    let asked = 0;
    const answer = await answerQuestion(faq, 'how do i cancel my membership', THRESHOLDS, async () => {
      asked++;
      return '';
    });
    assert.equal(answer.path, 'faq');
    assert.equal(answer.entry?.question, ENTRIES[0].question);
    assert.equal(answer.decision.certainty, 1);
    assert.equal(asked, 0);
  });

  it("on the model path, gives the passage the model's reply repeats when it is retrieval's best hit, else the fallback", async () => {
    const faq = await seededFaq();
    const doubtful = { ...THRESHOLDS, confidentMatch: 1.01 };
    const question = 'cancel the membership';
    const decision = await decideAnswer(faq, question, doubtful, true);
    assert.equal(decision.path, 'model');
    const right = await answerQuestion(faq, question, doubtful, async () => ENTRIES[0].answer);
    assert.deepEqual([right.path, right.entry?.question], ['model', ENTRIES[0].question]);
    assert.deepEqual(decision.ranked.map((hit) => hit.entry.question), [ENTRIES[0].question, ENTRIES[1].question]);
    const other = await answerQuestion(faq, question, doubtful, async () => ENTRIES[1].answer);
    assert.deepEqual([other.path, other.entry, other.chosen?.question], ['fallback', null, ENTRIES[1].question], "the model's pick is not retrieval's best hit");
    const stitched = await answerQuestion(faq, question, doubtful, async () => `${ENTRIES[0].answer} ${ENTRIES[1].answer}`);
    assert.deepEqual([stitched.path, stitched.entry], ['fallback', null]);
    assert.equal(stitched.generated, `${ENTRIES[0].answer} ${ENTRIES[1].answer}`);
  });

  it('abstains with no live model, and on a question that matches nothing', async () => {
    const faq = await seededFaq();
    assert.equal((await answerQuestion(faq, 'stop my membership', { ...THRESHOLDS, confidentMatch: 1.01 }, null)).path, 'fallback');
    assert.equal((await answerQuestion(faq, 'what is the weather in Lisbon', THRESHOLDS, async () => ENTRIES[0].answer)).path, 'fallback');
  });
});
