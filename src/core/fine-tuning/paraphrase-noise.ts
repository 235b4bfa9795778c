import { type SeededRandom, shuffled } from '../../model/random.js';
import { CHAT_ABBREVIATIONS } from '../retrieval/abbreviations.js';
import { isStopword } from '../retrieval/terms.js';

/**
 * Questions asked the way members type them, made from an FAQ question: a word dropped, a
 * typo, the words reordered, shorthand ("password" -> "pw"), lower case with no question mark,
 * a sentence of context first. Fine-tuning trains on them so that the model learns what a
 * question asks rather than its exact words, and the regression gate asks other ones (another
 * seed) as held-out questions.
 */
type Change = (words: string[], random: SeededRandom) => string[] | null;

/** Word -> its shorthand, the reverse of retrieval's abbreviations (one-word expansions only). */
const SHORTHAND = new Map<string, string>();
for (const [short, long] of Object.entries(CHAT_ABBREVIATIONS)) {
  if (!long.includes(' ') && long !== short && !SHORTHAND.has(long)) SHORTHAND.set(long, short);
}

const CONTEXT_SENTENCES = ['hi', 'hey, quick one', 'sorry if this was asked before', 'new here', 'hello, I have a question', 'help please'];

const dropWord: Change = (words, random) => {
  const droppable = words.map((_, i) => i).filter((i) => isStopword(words[i].toLowerCase()) || words.length > 4);
  if (droppable.length === 0 || words.length < 3) return null;
  const drop = droppable[Math.floor(random.next() * droppable.length)];
  return words.filter((_, i) => i !== drop);
};

const typo: Change = (words, random) => {
  const long = words.map((_, i) => i).filter((i) => /^\p{L}{5,}$/u.test(words[i]));
  if (long.length === 0) return null;
  const at = long[Math.floor(random.next() * long.length)];
  const word = words[at];
  const i = 1 + Math.floor(random.next() * (word.length - 2));
  // A swap of neighbours or a dropped letter: the two typos people make most.
  const typed = random.next() < 0.5 ? word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2) : word.slice(0, i) + word.slice(i + 1);
  return words.map((existing, j) => (j === at ? typed : existing));
};

const reorder: Change = (words, random) => {
  if (words.length < 4) return null;
  const cut = 1 + Math.floor(random.next() * (words.length - 2));
  return [...words.slice(cut), ...words.slice(0, cut)];
};

const shorthand: Change = (words) => {
  let changed = false;
  const result = words.map((word) => {
    const short = SHORTHAND.get(word.toLowerCase());
    if (!short) return word;
    changed = true;
    return short;
  });
  return changed ? result : null;
};

const CHANGES: readonly Change[] = [dropWord, typo, reorder, shorthand];

/**
 * `count` different noisy forms of `question` (fewer when it is too short to change that
 * often), none equal to it. Each applies one or two changes, then casual casing and maybe a
 * sentence of context.
 */
export function noisyQuestions(question: string, count: number, random: SeededRandom): string[] {
  const base = question.trim().replace(/[?.!\s]+$/u, '').split(/\s+/u);
  const made = new Set<string>();
  for (let attempt = 0; attempt < count * 6 && made.size < count; attempt++) {
    let words = [...base];
    for (const change of shuffled(CHANGES, random).slice(0, 1 + Math.floor(random.next() * 2))) words = change(words, random) ?? words;
    let text = words.join(' ');
    if (random.next() < 0.6) text = text.toLowerCase();
    if (random.next() < 0.3) text = `${CONTEXT_SENTENCES[Math.floor(random.next() * CONTEXT_SENTENCES.length)]}. ${text}`;
    if (random.next() < 0.4) text += '?';
    if (text.toLowerCase().replace(/\W+/gu, '') !== question.toLowerCase().replace(/\W+/gu, '')) made.add(text);
  }
  return [...made];
}
