import type { Example } from '../model/training/data.js';
import { SeededRandom, shuffled } from '../model/random.js';
import { type FaqPassage, type PromptParts, fitPromptParts, formatCompletion, formatPrompt } from './prompt-format.js';

/**
 * Fine-tuning examples from an FAQ, in the engine's own prompt format: each entry is asked
 * by its question and by variants of it, with the entry among retrieved distractors in a
 * shuffled order, so the model learns to find the right passage and copy its answer.
 */
export interface ExampleOptions {
  readonly instructions: string;
  /** Passages in each prompt, the right one included. */
  readonly passages: number;
  /** Prompts per entry: the question itself, then variants. */
  readonly askings: number;
  readonly seed: number;
  /** The model's context minus room for the answer, in tokens. */
  readonly promptBudget: number;
  readonly countTokens: (text: string) => number;
}

export function faqTrainingExamples(entries: readonly FaqPassage[], options: ExampleOptions): Example[] {
  const random = new SeededRandom(options.seed);
  const examples: Example[] = [];
  entries.forEach((entry, index) => {
    const others = entries.filter((_, i) => i !== index);
    const askings = [entry.question, ...questionVariants(entry.question)].slice(0, Math.max(1, options.askings));
    for (const asked of askings) {
      const distractors = shuffled(others, random).slice(0, Math.max(0, options.passages - 1));
      const faq = shuffled([entry, ...distractors], random);
      const parts: PromptParts = { instructions: options.instructions, faq, history: [], message: asked };
      // The right passage must survive the cut: drop distractors before it.
      let fitted = fitPromptParts(parts, options.promptBudget, options.countTokens);
      if (!fitted.faq.includes(entry)) fitted = fitPromptParts({ ...parts, faq: [entry, ...distractors] }, options.promptBudget, options.countTokens);
      examples.push({ prompt: formatPrompt(fitted), completion: formatCompletion(entry.answer) });
    }
  });
  return examples;
}

/**
 * Rewordings a user might type: lower case without the question mark, a "how to" form, a
 * polite frame. Held-out variants of the same kind measure the regression gate.
 */
export function questionVariants(question: string): string[] {
  const bare = question.trim().replace(/[?.!\s]+$/u, '');
  const lower = bare.charAt(0).toLowerCase() + bare.slice(1);
  const variants = [`${lower}`, `Can you tell me: ${lower}?`, `${bare}? Thanks!`, `Quick question - ${lower}?`];
  const howDoI = /^how (?:do|can|should) (?:i|we) (.+)$/iu.exec(bare);
  if (howDoI) variants.splice(1, 0, `how to ${howDoI[1]}`);
  return [...new Set(variants)].filter((variant) => variant !== question);
}
