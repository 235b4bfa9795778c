import type { Example } from '../../model/training/data.js';
import { SeededRandom, shuffled } from '../../model/random.js';
import type { FaqEntry } from '../faq/entry.js';
import { distinctQuestions, heldOutQuestions, splitAlternates } from './held-out-questions.js';
import { noisyQuestions } from './paraphrase-noise.js';
import { type PromptParts, fitPromptParts, formatCompletion, formatPrompt } from '../conversation/prompt-format.js';
import { Bm25Index } from '../retrieval/bm25.js';
import { Lexicon } from '../retrieval/lexicon.js';
import type { SynonymGroups } from '../retrieval/synonym-list.js';

/**
 * Fine-tuning examples from an FAQ, in the engine's own prompt format. Each entry is asked by
 * its question, its trained alternates and noisy forms of them (paraphrase-noise.ts), never by
 * a held-out question (held-out-questions.ts). The right passage sits among distractors in a
 * shuffled order: part of them the passages that share the most words with what was asked
 * (hard negatives, ranked by BM25 with retrieval's lexicon), the rest drawn at random. An
 * alternate or a noisy question often shares more words with a hard negative than with its
 * own passage, so the model learns which passage a question means, not which one repeats its
 * words.
 */
export interface ExampleOptions {
  readonly instructions: string;
  /** Passages in each prompt, the right one included. */
  readonly passages: number;
  /** Noisy forms per entry, spread over its question and trained alternates. */
  readonly noisyQuestions: number;
  /** Noisy questions per entry that the gate holds out: they are left out here. */
  readonly heldOutQuestions: number;
  readonly seed: number;
  /** The model's context minus room for the answer, in tokens. */
  readonly promptBudget: number;
  readonly countTokens: (text: string) => number;
  /** The FAQ's synonym list, so hard negatives are the entries retrieval would rank high. */
  readonly synonyms?: SynonymGroups;
}

export function faqTrainingExamples(entries: readonly FaqEntry[], options: ExampleOptions): Example[] {
  const random = new SeededRandom(options.seed);
  // Passages as the prompt shows them (question and answer, no alternates): a hard negative is
  // one whose shown words the question shares. WordNet is left out: slow to load, and the shared
  // words matter here, not their senses.
  const shown = entries.map((entry) => ({ ...entry, alternates: [] }));
  const index = new Bm25Index(shown, new Lexicon({ synonyms: options.synonyms, wordnet: null }));
  const distractors = Math.max(0, Math.min(options.passages, entries.length) - 1);
  const hardNegatives = Math.ceil(distractors / 2);
  const examples: Example[] = [];
  for (const entry of entries) {
    for (const asked of trainingQuestions(entry, options, random)) {
      const hard = index
        .search(asked, hardNegatives + 1)
        .map((hit) => hit.entry)
        .filter((other) => other.id !== entry.id)
        .slice(0, hardNegatives);
      const others = shown.filter((other) => other.id !== entry.id && !hard.includes(other));
      const chosen = [...hard, ...shuffled(others, random).slice(0, distractors - hard.length)];
      const parts: PromptParts = { instructions: options.instructions, faq: shuffled([entry, ...chosen], random), history: [], message: asked };
      // The right passage must survive the cut: drop distractors before it.
      let fitted = fitPromptParts(parts, options.promptBudget, options.countTokens);
      if (!fitted.faq.includes(entry)) fitted = fitPromptParts({ ...parts, faq: [entry, ...chosen] }, options.promptBudget, options.countTokens);
      examples.push({ prompt: formatPrompt(fitted), completion: formatCompletion(entry.answer) });
    }
  }
  return examples;
}

/**
 * The question, the trained alternates, then `noisyQuestions` noisy forms drawn from them in
 * turn; repeats (after normalizeQuestion) and the gate's held-out questions left out.
 */
function trainingQuestions(entry: FaqEntry, options: ExampleOptions, random: SeededRandom): string[] {
  const sources = [entry.question, ...splitAlternates(entry).trained];
  const noisy = sources.flatMap((source, i) => {
    const share = Math.floor(options.noisyQuestions / sources.length) + (i < options.noisyQuestions % sources.length ? 1 : 0);
    return share > 0 ? noisyQuestions(source, share, random) : [];
  });
  return distinctQuestions([...sources, ...noisy], heldOutQuestions(entry, options.heldOutQuestions));
}
