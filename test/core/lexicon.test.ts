import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FaqError, type FaqEntry } from '../../src/core/faq/entry.js';
import { Bm25Index } from '../../src/core/retrieval/bm25.js';
import { editDistance, Lexicon } from '../../src/core/retrieval/lexicon.js';
import { checkSynonyms, MAX_GROUP_SIZE } from '../../src/core/retrieval/synonym-list.js';
import { WordNet } from '../../src/core/retrieval/wordnet.js';
import { SeededRandom } from '../../src/model/random.js';

function entry(id: string, question: string, answer: string): FaqEntry {
  return { id, question, answer, tags: [], alternates: [], updatedAt: '2024-01-01T00:00:00.000Z' };
}

const FAQ = [
  entry('password', 'How do I reset my password?', 'Open Settings, then Security, and press Reset.'),
  entry('refund', 'Can I get a refund?', 'Within 30 days of purchase, from the Billing page.'),
  entry('twofactor', 'How do I turn on two-factor authentication?', 'Settings, Security, Two-factor: scan the code with an authenticator app.'),
  entry('hours', 'What are your opening hours?', 'Monday to Friday, nine to five.'),
];

/** Optimal string alignment distance by its textbook recurrence, memoized: the reference for editDistance. */
function referenceDistance(a: string, b: string): number {
  const memo = new Map<string, number>();
  const d = (i: number, j: number): number => {
    if (i === 0) return j;
    if (j === 0) return i;
    const key = `${i},${j}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let best = Math.min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1));
    if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d(i - 2, j - 2) + 1);
    memo.set(key, best);
    return best;
  };
  return d(a.length, b.length);
}

describe('editDistance', () => {
  it('is the optimal string alignment distance, against the recurrence on random words', () => {
    const random = new SeededRandom(7);
    const word = () => Array.from({ length: Math.floor(random.next() * 8) }, () => 'abcd'[Math.floor(random.next() * 4)]).join('');
    for (let i = 0; i < 500; i++) {
      const [a, b] = [word(), word()];
      assert.equal(editDistance(a, b), referenceDistance(a, b), `${a} / ${b}`);
    }
    assert.equal(editDistance('recieve', 'receive'), 1, 'a swap of neighbours is one edit');
  });

  it('stops at the bound: a distance at or past it comes back as the bound', () => {
    assert.equal(editDistance('password', 'pasword', 2), 1);
    assert.equal(editDistance('password', 'parsley', 2), 2);
  });
});

describe('Lexicon', () => {
  const plain = new Bm25Index(FAQ, new Lexicon({ wordnet: null, abbreviations: {} }));
  const lexical = new Bm25Index(FAQ, new Lexicon({ wordnet: null }));

  it('corrects a typo to the FAQ word one edit away, and leaves short words alone', () => {
    assert.equal(lexical.search('pasword reset', 1)[0]?.entry.id, 'password');
    assert.equal(lexical.search('refnud', 1)[0]?.entry.id, 'refund');
    assert.deepEqual(lexical.search('ref', 1), [], 'three letters are too few to guess from');
  });

  it('reads chat shorthand: pw, 2fa', () => {
    assert.deepEqual(plain.search('forgot my pw', 1), []);
    assert.equal(lexical.search('forgot my pw', 1)[0]?.entry.id, 'password');
    assert.equal(lexical.search('how to enable 2fa', 1)[0]?.entry.id, 'twofactor');
  });

  it("finds an entry through WordNet's synonyms, at less weight than the word itself", () => {
    const wordnet = new Bm25Index(FAQ, new Lexicon({ wordnet: WordNet.shared() }));
    assert.deepEqual(lexical.search('will you repay me', 1), []);
    const [hit] = wordnet.search('will you repay me', 1);
    assert.equal(hit?.entry.id, 'refund');
    assert.ok(hit.confidence < wordnet.search('will you refund me', 1)[0].confidence);
  });

  it("uses the FAQ's own synonym list, phrases included", () => {
    const withList = new Bm25Index(FAQ, new Lexicon({ wordnet: null, synonyms: [['money back', 'refund']] }));
    assert.deepEqual(lexical.search('can I have my money back', 1).map((hit) => hit.entry.id), []);
    assert.equal(withList.search('can I have my money back', 1)[0]?.entry.id, 'refund');
  });
});

describe('checkSynonyms', () => {

  it('cleans phrases and joins groups that share one', () => {
    assert.deepEqual(checkSynonyms([['Money  Back', 'refund'], ['refund', 'reimbursement'], ['2fa', 'two-factor']]), [
      ['money back', 'refund', 'reimbursement'],
      ['2fa', 'two-factor'],
    ]);
  });

  it('refuses a list that would map everything to everything', () => {
    const fail = (groups: string[][], message: RegExp) =>
      assert.throws(() => checkSynonyms(groups, FAQ), (error: unknown) => error instanceof FaqError && error.code === 'FAQ_INVALID' && message.test(error.message));
    fail([['the', 'refund']], /"the" has no word that is not a stopword/);
    fail([['refund']], /has one phrase/);
    const chain = Array.from({ length: MAX_GROUP_SIZE }, (_, i) => [`word${i}`, `word${i + 1}`]);
    fail(chain, new RegExp(`one group of ${MAX_GROUP_SIZE + 1} phrases`));
    // "settings" and "security" are in most answers: a group of them matches most questions.
    fail([['settings', 'security', 'monday']], /matches 3 of the FAQ's 4 entries/);
  });
});
