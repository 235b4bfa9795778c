import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FaqEntry } from '../../src/core/faq/entry.js';
import { Bm25Index } from '../../src/core/retrieval/bm25.js';
import { Lexicon } from '../../src/core/retrieval/lexicon.js';
import { terms as tokenize } from '../../src/core/retrieval/terms.js';

/** Plain BM25: no WordNet, so the figures are the formula's. */
const PLAIN = new Lexicon({ wordnet: null });

function entry(id: string, question: string, answer: string): FaqEntry {
  return { id, question, answer, tags: [], alternates: [], updatedAt: '2024-01-01T00:00:00.000Z' };
}

const TOLERANCE = 1e-12;

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= TOLERANCE, `${what}: ${actual} != ${expected}`);
}

describe('terms', () => {
  it('lower-cases, splits on non-word characters, drops stopwords and stems English (Porter)', () => {
    assert.deepEqual(tokenize("How do I reset my Passwords? It's the settings-page."), ['reset', 'password', 'set', 'page']);
    assert.deepEqual(tokenize('replies classes bus'), ['repli', 'class', 'bu']);
    assert.deepEqual(tokenize('cancel cancelled cancelling cancels cancellation'), ['cancel', 'cancel', 'cancel', 'cancel', 'cancel']);
  });

  it('keeps any script, cuts Chinese and Japanese into bigrams, and makes no terms of emoji', () => {
    assert.deepEqual(tokenize('Как сбросить пароль?'), ['как', 'сбросить', 'пароль']);
    assert.deepEqual(tokenize('كيف أغير كلمة المرور'), ['كيف', 'أغير', 'كلمة', 'المرور']);
    assert.deepEqual(tokenize('重置密码'), ['重置', '置密', '密码']);
    assert.deepEqual(tokenize('猫'), ['猫']);
    assert.deepEqual(tokenize('🔥🎉 👍🏽 ❤️'), []);
    assert.deepEqual(tokenize('ＡＢＣ１２３'), ['abc123']);
    assert.deepEqual(tokenize('Step 1️⃣'), ['step', '1']);
  });
});

describe('BM25: a reference computed by hand', () => {
  // Terms per field (after stopwords):
  //   e1  question [reset, password]          (2)   answer [open, menu, reset]               (3)
  //   e2  question [change, email]            (2)   answer [open, menu, type, new, email]    (5)
  //   e3  question [delete, account, forever] (3)   answer [contact, support]                (2)
  // N = 3; average question length 7/3, average answer length 10/3; k1 = 1.2, b = 0.75.
  const corpus = [
    entry('e1', 'Reset password', 'Open the menu then reset'),
    entry('e2', 'Change email', 'Open the menu and type new email'),
    entry('e3', 'Delete account forever', 'Contact support'),
  ];
  const index = new Bm25Index(corpus, PLAIN);

  // idf = ln(1 + (N - df + 0.5) / (df + 0.5))
  const idfReset = Math.log(1 + (3 - 1 + 0.5) / (1 + 0.5)); // df 1
  const idfMenu = Math.log(1 + (3 - 2 + 0.5) / (2 + 0.5)); // df 2
  // tf (k1 + 1) / (tf + k1 (1 - b + b len / avgLen)), tf = 1 throughout
  const saturation = (length: number, averageLength: number): number => 2.2 / (1 + 1.2 * (0.25 + (0.75 * length) / averageLength));

  it('has the IDF of the formula', () => {
    close(idfReset, 0.9808292530117263, 'ln(8/3)');
    close(idfMenu, 0.47000362924573563, 'ln(1.6)');
    close(index.idf('reset'), idfReset, 'idf(reset)');
    close(index.idf('menu'), idfMenu, 'idf(menu)');
    close(index.idf('open'), idfMenu, 'idf(open)');
    close(index.idf('absent'), Math.log(1 + 3.5 / 0.5), 'idf(absent)');
  });

  it('scores "reset menu" as the formula, question weighted 2x', () => {
    // e1: reset in its question (x2) and answer, menu in its answer; e2: menu in its answer; e3: nothing.
    const e1Question = 2 * idfReset * saturation(2, 7 / 3);
    const e1 = e1Question + idfReset * saturation(3, 10 / 3) + idfMenu * saturation(3, 10 / 3);
    const e2 = idfMenu * saturation(5, 10 / 3);
    close(e1, 3.596133369463609, 'e1 by hand');
    close(e2, 0.390191692204007, 'e2 by hand');

    const hits = index.search('Reset the MENU menu?', 10);
    assert.deepEqual(hits.map((hit) => hit.entry.id), ['e1', 'e2']);
    close(hits[0].score, e1, 'score(e1)');
    close(hits[0].questionScore, e1Question, 'questionScore(e1)');
    close(hits[1].score, e2, 'score(e2)');
    assert.equal(hits[1].questionScore, 0);
  });

  it('weights a term in the question above the same term in an answer of the same length', () => {
    const index = new Bm25Index([entry('a', 'Billing', 'Ask the team'), entry('b', 'Team', 'Ask about billing')], PLAIN);
    assert.deepEqual(index.search('billing', 2).map((hit) => hit.entry.id), ['a', 'b']);
    // Each field is at its average length here, so with equal weights the two tie.
    const even = new Bm25Index([entry('a', 'Billing', 'Ask the team'), entry('b', 'Team', 'Ask about billing')], PLAIN, { questionWeight: 1 });
    const [first, second] = even.search('billing', 2);
    close(first.score, second.score, 'equal weights');
  });

  it('returns at most k hits, none for k = 0, and refuses a bad k', () => {
    assert.equal(index.search('open', 1).length, 1);
    assert.deepEqual(index.search('open', 0), []);
    assert.throws(() => index.search('open', -1), RangeError);
    assert.throws(() => index.search('open', 1.5), RangeError);
  });
});

/** A support FAQ of 20 entries, and a paraphrase of each question, written without looking at the answers. */
const FAQ = [
  entry('password', 'How do I reset my password?', 'Open Settings, choose Security, then Reset password. A link is sent to your email.'),
  entry('email', 'How can I change the email address on my account?', 'Go to Settings > Profile and edit the email field. We send a confirmation link.'),
  entry('delete', 'How do I delete my account?', 'Settings > Account > Delete account. This removes all your data after 14 days.'),
  entry('refund', 'Can I get a refund?', 'Refunds are possible within 30 days of purchase. Contact billing with your order number.'),
  entry('invoice', 'Where do I find my invoices?', 'Invoices are listed under Billing > History and can be downloaded as PDF.'),
  entry('payment', 'Which payment methods do you accept?', 'We accept credit cards, PayPal and bank transfer.'),
  entry('cancel', 'How do I cancel my subscription?', 'Open Billing and press Cancel plan. You keep access until the end of the period.'),
  entry('upgrade', 'How do I upgrade to the Pro plan?', 'Billing > Plans > Pro. The price difference is charged pro rata.'),
  entry('2fa', 'How do I turn on two-factor authentication?', 'Settings > Security > Two-factor. Scan the QR code with an authenticator app.'),
  entry('export', 'Can I export my data?', 'Yes: Settings > Privacy > Export creates a ZIP archive of everything you stored.'),
  entry('invite', 'How do I invite teammates?', 'Open Team and press Invite; new members get an email with a join link.'),
  entry('roles', 'What roles can team members have?', 'Owner, admin, member and guest. Admins manage members; guests only read.'),
  entry('offline', 'Does the app work offline?', 'The mobile app caches recent documents and syncs when you are back online.'),
  entry('mobile', 'Is there a mobile app for Android and iPhone?', 'Yes, search for us on the Play Store and the App Store.'),
  entry('limits', 'What is the maximum file upload size?', 'Uploads can be up to 2 GB per file on Pro and 100 MB on Free.'),
  entry('api', 'Do you have a public API?', 'Yes, a REST API with tokens created under Settings > Developer.'),
  entry('support', 'How do I contact customer support?', 'Write to support@example.com or use the chat; we answer within a day.'),
  entry('language', 'Can I change the interface language?', 'Settings > Preferences > Language lists 12 languages.'),
  entry('darkmode', 'Is there a dark mode?', 'Yes: Settings > Appearance > Theme, choose Dark.'),
  entry('outage', 'Is the service down right now?', 'Our status page shows current incidents and uptime history.'),
];

const PARAPHRASES: [query: string, id: string][] = [
  ['forgot my password, how to reset it', 'password'],
  ['change email address', 'email'],
  ['I want to delete my account for good', 'delete'],
  ['money back? refund policy', 'refund'],
  ['download invoice pdf', 'invoice'],
  ['do you take paypal or credit cards', 'payment'],
  ['stop my subscription', 'cancel'],
  ['switch to pro plan', 'upgrade'],
  ['enable two-factor authentication', '2fa'],
  ['export all my data', 'export'],
  ['add teammates to my team', 'invite'],
  ['what roles exist for members', 'roles'],
  ['use the app without internet, offline mode', 'offline'],
  ['android app available?', 'mobile'],
  ['max upload size for files', 'limits'],
  ['api access for developers', 'api'],
  ['talk to customer support', 'support'],
  ['switch the interface to another language', 'language'],
  ['dark theme', 'darkmode'],
  ['service outage, is it down', 'outage'],
];

describe('BM25: ranking on a 20-entry FAQ', () => {
  const index = new Bm25Index(FAQ, PLAIN);

  it('finds the entry for most paraphrased questions at top-1, and for all in the top 3', () => {
    const misses: string[] = [];
    for (const [query, id] of PARAPHRASES) {
      const hits = index.search(query, 3);
      if (hits[0]?.entry.id !== id) misses.push(`${query} -> ${hits.map((hit) => hit.entry.id).join(', ')}`);
      assert.ok(hits.some((hit) => hit.entry.id === id), `${query}: ${id} not in the top 3`);
    }
    assert.ok(misses.length <= 3, `top-1 misses:\n${misses.join('\n')}`);
  });

  it('orders hits by score and returns nothing for words it has never seen', () => {
    const hits = index.search('settings security', 20);
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1].score >= hits[i].score);
    assert.deepEqual(index.search('zebra quantum', 5), []);
    assert.deepEqual(index.search('', 5), []);
    assert.deepEqual(index.search('the and of', 5), []);
  });

  it('handles non-Latin scripts and emoji-only queries', () => {
    const multilingual = new Bm25Index([
      ...FAQ,
      entry('ru', 'Как сбросить пароль?', 'Откройте настройки и выберите «Сбросить пароль».'),
      entry('zh', '如何重置密码？', '打开设置，选择安全，然后重置密码。'),
      entry('ja', '請求書はどこで見られますか？', '請求の履歴ページからダウンロードできます。'),
      entry('ar', 'كيف أغير كلمة المرور؟', 'افتح الإعدادات ثم اختر الأمان.'),
      entry('emoji', 'What does 🎉 mean in the changelog?', 'A new feature 🎉.'),
    ], PLAIN);
    assert.equal(multilingual.search('сбросить пароль', 1)[0].entry.id, 'ru');
    assert.equal(multilingual.search('我忘了密码，怎么重置', 1)[0].entry.id, 'zh');
    assert.equal(multilingual.search('請求書', 1)[0].entry.id, 'ja');
    assert.equal(multilingual.search('كلمة المرور', 1)[0].entry.id, 'ar');
    assert.deepEqual(multilingual.search('🎉🎉🔥', 5), []);
    assert.equal(multilingual.search('🎉 changelog', 1)[0].entry.id, 'emoji');
  });

  it('an empty FAQ finds nothing', () => {
    assert.deepEqual(new Bm25Index([], PLAIN).search('password', 3), []);
  });
});
