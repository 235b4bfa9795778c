import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type FaqEntry, phrasings } from '../../src/core/faq/entry.js';
import { findOverlaps, type Overlap } from '../../src/core/faq/overlaps.js';
import { terms } from '../../src/core/retrieval/terms.js';
import { SeededRandom } from '../../src/model/random.js';

const entry = (id: string, question: string, answer: string, alternates: string[] = []): FaqEntry => ({
  id,
  question,
  answer,
  tags: [],
  alternates,
  updatedAt: '2024-01-01T00:00:00.000Z',
});

const pairs = (overlaps: readonly Overlap[]) => overlaps.map(({ first, second }) => `${first.id} "${first.phrasing}" / ${second.id} "${second.phrasing}"`);

/**
 * The rule written out plainly, over every pair of phrasings of every pair of entries, as the
 * reference for findOverlaps' prefix filtering.
 */
function allPairsReference(entries: readonly FaqEntry[]): string[] {
  const found: string[] = [];
  const sets = entries.map((entry) => phrasings(entry).map((phrasing) => new Set(terms(phrasing))));
  for (let i = 0; i < entries.length; i++) {
    for (let j = i + 1; j < entries.length; j++) {
      const [a, b] = [entries[i], entries[j]];
      if (a.answer.replace(/\s+/g, ' ').trim().toLowerCase() === b.answer.replace(/\s+/g, ' ').trim().toLowerCase()) continue;
      const near = sets[i].some((x) =>
        sets[j].some((y) => {
          if (x.size === 0 || y.size === 0) return false;
          const shared = [...x].filter((term) => y.has(term)).length;
          const jaccard = shared / (x.size + y.size - shared);
          const contained = shared === Math.min(x.size, y.size) && Math.min(x.size, y.size) >= 2 && Math.abs(x.size - y.size) <= 1;
          return jaccard >= 0.8 || contained;
        }),
      );
      if (near) found.push(`${a.id} ${b.id}`);
    }
  }
  return found;
}

describe('overlapping entries', () => {
  it('reports two questions that ask the same with different answers, as retrieval reads them', () => {
    const entries = [
      entry('q1', 'How do I reset my password?', 'Use the reset link.'),
      entry('q3', 'How do I cancel?', 'Under Plan.'),
      entry('q4', 'Where are the invoices?', 'Under Billing.'),
      entry('q9', 'How can I cancel?', 'Write to support.'),
      // One word says too little: these ask something else.
      entry('q10', 'Cancelling my subscription', 'Under Plan, then Cancel.'),
      entry('q11', 'Passwords: resetting them', 'Use the reset link.'),
      // Two words, and one more.
      entry('q12', 'How do I reset my password by email?', 'Check your inbox.'),
    ];
    assert.deepEqual(pairs(findOverlaps(entries)), [
      'q1 "How do I reset my password?" / q12 "How do I reset my password by email?"',
      'q3 "How do I cancel?" / q9 "How can I cancel?"',
    ]);
  });

  it('compares alternates too, reports each pair of entries once, and names the phrasings that met', () => {
    const entries = [
      entry('a', 'How do I stop paying?', 'Cancel under Plan.', ['end my sub', 'stop paying please']),
      entry('b', 'Can I end my subscription', 'No refunds.', ['stop paying now', 'quit paying']),
    ];
    assert.deepEqual(pairs(findOverlaps(entries)), ['a "How do I stop paying?" / b "stop paying now"']);
  });

  it('stays quiet when the answers are the same, when the words differ enough, and for phrasings of stopwords only', () => {
    const entries = [
      entry('a', 'How do I cancel?', 'Under  Plan.'),
      entry('b', 'how can i CANCEL', 'under plan.'),
      entry('c', 'How do I cancel my yearly subscription plan?', 'Write to us.'),
      entry('d', 'What is it?', 'A bot.'),
      entry('e', 'What is this?', 'A tool.'),
    ];
    assert.deepEqual(findOverlaps(entries), []);
  });

  it('with `among`, reports only the pairs that touch those entries', () => {
    const entries = [
      entry('a', 'How do I cancel?', 'One.'),
      entry('b', 'How can I cancel?', 'Two.'),
      entry('c', 'Where is my invoice?', 'Three.'),
      entry('d', 'Where are my invoices?', 'Four.'),
    ];
    assert.deepEqual(pairs(findOverlaps(entries, new Set(['d']))), ['c "Where is my invoice?" / d "Where are my invoices?"']);
    assert.equal(findOverlaps(entries).length, 2);
  });

  it('finds exactly the pairs the all-pairs reference finds, on random FAQs', () => {
    const vocabulary = 'cancel refund invoice password reset account plan pay card login email phone'.split(' ');
    let reported = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const random = new SeededRandom(seed);
      const next = () => random.next();
      const pick = () => vocabulary[Math.floor(next() * vocabulary.length)];
      const phrase = () => Array.from({ length: 1 + Math.floor(next() * 9) }, pick).join(' ');
      const entries = Array.from({ length: 60 }, (_, i) =>
        entry(`q${i}`, `${phrase()} ${i}`.replace(/ \d+$/, next() < 0.5 ? '' : ` x${i}`), `answer ${Math.floor(next() * 20)}`, next() < 0.3 ? [phrase()] : []),
      ).filter((candidate, i, all) => all.findIndex((other) => other.question === candidate.question) === i);
      const found = findOverlaps(entries).map(({ first, second }) => `${first.id} ${second.id}`);
      assert.deepEqual(found, allPairsReference(entries), `seed ${seed}`);
      reported += found.length;
    }
    // Enough pairs of every kind to mean something.
    assert.ok(reported > 100, `${reported} pairs`);
  });

  it('checks a large FAQ quickly, even one whose questions share all words but one', () => {
    const entries = Array.from({ length: 5000 }, (_, i) => entry(`q${i}`, `How do I set up the widget for site ${i}?`, `Answer ${i}.`));
    const start = performance.now();
    assert.deepEqual(findOverlaps(entries), []);
    assert.ok(performance.now() - start < 3000, `${Math.round(performance.now() - start)} ms`);
  });
});
